// ShoalCluster: what turns one worker into a sharded server: the supervisor that spawns and
// restarts workers, the shared-memory segment (connection ids, registry, statistics) and the
// Unix-socket bus between workers. See ../../docs/cluster.md for the contract.
