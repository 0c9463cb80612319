#!/usr/bin/env python3
"""nginx ending TLS in front of a plain server, as one process tree for the benchmark drivers
(uws_client_cpu.py counts the CPU of the whole tree: nginx and the server behind it).

    nginx_tls_front.py PORT CERT KEY -- SERVER COMMAND with @BACKEND@

Writes an nginx configuration in a temporary folder (one worker, the WebSocket proxying of
Deploy/nginx/shoal-tls.conf, TLS 1.2/1.3, no access log), starts nginx in the foreground on
127.0.0.1:PORT, then becomes the server (exec) on a free port it proxies to, so the nginx
processes are the server's children and a signal to the session stops both.
"""
import os
import socket
import subprocess
import sys
import tempfile


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    if len(sys.argv) < 6 or sys.argv[4] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    port, cert, key = sys.argv[1], os.path.abspath(sys.argv[2]), os.path.abspath(sys.argv[3])
    backend = free_port()
    folder = tempfile.mkdtemp(prefix="shoal-nginx-front-")
    config = os.path.join(folder, "nginx.conf")
    with open(config, "w") as f:
        f.write(f"""
daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
    upstream backend {{ server 127.0.0.1:{backend}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header Forwarded "";
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
        }}
    }}
}}
""")
    subprocess.Popen(["nginx", "-p", folder, "-c", config], stdin=subprocess.DEVNULL)
    server = [a.replace("@BACKEND@", str(backend)) for a in sys.argv[5:]]
    os.execvp(server[0], server)


if __name__ == "__main__":
    sys.exit(main())
