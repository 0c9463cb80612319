// Compiles the demo page (Sources/Shoal/DemoPage) into the `Shoal` target as byte arrays, so the
// binary serves it with nothing beside it: one file to copy to a server, and no Foundation at run
// time to find a resource bundle. A build command with the page's files as inputs, so an edited
// page is embedded again on the next build and an unchanged one costs nothing.
import Foundation
import PackagePlugin

@main
struct DemoPagePlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let page = target.directoryURL.appending(path: "DemoPage")
        let names = try FileManager.default.contentsOfDirectory(atPath: page.path)
            .filter { !$0.hasPrefix(".") }
            .sorted()
        let inputs = names.map { page.appending(path: $0) }
        let output = context.pluginWorkDirectoryURL.appending(path: "DemoPage.swift")
        let script = context.package.directoryURL.appending(path: "scripts/embed-demo-page.sh")
        return [
            .buildCommand(
                displayName: "Embedding the demo page",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: [script.path, output.path] + inputs.map(\.path),
                inputFiles: [script] + inputs,
                outputFiles: [output])
        ]
    }
}
