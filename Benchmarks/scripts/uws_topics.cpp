// uWebSockets' pub/sub (ws->subscribe, app.publish) speaking the commands of `shoal serve --handler topics`,
// only in the shapes `shoal-bench topics` sends: {"subscribe":"T"} -> subscribe + {"subscribed":"T"};
// {"publish":"T","data":D} -> app.publish(T, D) (the sender too when subscribed, as Shoal's handler does).
// For docs/benchmarks.md; built outside the repository against a uWebSockets checkout U:
//   (cd obj && gcc -DLIBUS_NO_SSL -std=c11 -I$U/uSockets/src -O3 -c $U/uSockets/src/*.c \
//      $U/uSockets/src/eventing/*.c $U/uSockets/src/crypto/*.c)
//   g++ -std=c++20 -O3 -DLIBUS_NO_SSL -DUWS_NO_ZLIB -I$U/src -I$U/uSockets/src uws_topics.cpp obj/*.o -o uws_topics
#include "App.h"
#include <cstdlib>
#include <string>
#include <string_view>

struct PerSocketData {};

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 9001;
    uWS::App *appPtr = nullptr;
    uWS::App app;
    appPtr = &app;
    app.ws<PerSocketData>("/*", {
        .compression = uWS::DISABLED,
        .maxPayloadLength = 16 * 1024 * 1024,
        .idleTimeout = 120,
        .maxBackpressure = 16 * 1024 * 1024,
        .message = [appPtr](auto *ws, std::string_view msg, uWS::OpCode) {
            constexpr std::string_view sub = "{\"subscribe\":\"";
            constexpr std::string_view pub = "{\"publish\":\"";
            if (msg.substr(0, sub.size()) == sub && msg.size() >= sub.size() + 2) {
                std::string_view topic = msg.substr(sub.size(), msg.size() - sub.size() - 2);
                ws->subscribe(topic);
                ws->send("{\"subscribed\":\"" + std::string(topic) + "\"}", uWS::TEXT);
            } else if (msg.substr(0, pub.size()) == pub) {
                std::string_view rest = msg.substr(pub.size());
                size_t quote = rest.find('"');
                if (quote == std::string_view::npos) return;
                std::string_view topic = rest.substr(0, quote);
                size_t data = rest.find("\"data\":", quote);
                if (data == std::string_view::npos || rest.size() < data + 8) return;
                data += 7;
                appPtr->publish(topic, rest.substr(data, rest.size() - data - 1), uWS::TEXT);
            } else {
                ws->send("{\"error\":\"unknown command\"}", uWS::TEXT);
            }
        },
    }).listen("127.0.0.1", port, [port](auto *socket) {
        if (!socket) { fprintf(stderr, "cannot listen on %d\n", port); exit(1); }
    }).run();
}
