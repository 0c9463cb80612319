// Locates the demo page shipped inside the package's resource bundle (startup only).
import Foundation

enum BundledResources {
    /// The bundled `public` folder (the demo chat page), when the bundle is installed beside the binary.
    static var publicDirectory: String? {
        Bundle.module.url(forResource: "public", withExtension: nil)?.path
    }
}
