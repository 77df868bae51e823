import Foundation
import Shared
import Yams

/// The YAML form of the model, for the management API in file mode and
/// `portcullis config export`. Comments in a hand-written file do not
/// survive a write through the API (the README says so).
enum ConfigFileWriter {
    static func yaml(_ model: GatewayConfig) throws -> String {
        let encoder = YAMLEncoder()
        encoder.options.sortKeys = false
        return "# Written by portcullis; edits through the management API replace this file.\n" + (try encoder.encode(model))
    }
}

extension ConfigFileWriter {
    /// The four document kinds without `server`, which MongoDB does not
    /// hold: what `config export` prints and `config import` reads.
    private struct Documents: Encodable {
        let collections: [CollectionConfig]
        let policies: [PolicyConfig]
        let credentials: [CredentialConfig]
        let clients: [ClientConfig]
    }

    static func documentsYAML(_ model: GatewayConfig) throws -> String {
        let encoder = YAMLEncoder()
        encoder.options.sortKeys = false
        let documents = Documents(
            collections: model.collections, policies: model.policies, credentials: model.credentials, clients: model.clients)
        return "# Exported by portcullis config export; load with portcullis config import.\n" + (try encoder.encode(documents))
    }
}
