// How many workers a cluster needs to hold a number of connections on this host. A worker holds at
// most its open-files limit minus its bus channels and 256 (listeners, HTTP requests), its --max-connections and
// its share of the registry, so a million connections under a 20,000-file limit take 53 workers (51
// hold them exactly, 53 however the kernel spreads them), not one per CPU. Pure, so the arithmetic
// is tested without processes.

/// The worker count for `--workers auto`, and what the supervisor warns about at start.
public struct WorkerSizing: Equatable, Sendable {
    /// Most workers a supervisor runs (as `--workers` accepts).
    public static let maximumWorkers = 256
    /// Descriptors a worker keeps for other things than WebSocket clients and the bus.
    public static let reservedDescriptors = 256

    /// Bus channel ends a worker holds with `workers` workers: one to every other of the 2 × workers
    /// slots (old and new generation), open for the worker's whole life. At 53 workers that is 105,
    /// which a fixed reserve of 256 would have had to hold beside everything else.
    public static func busDescriptors(workers: Int) -> Int {
        max(0, 2 * workers - 1)
    }

    /// Descriptors one of `workers` workers has for clients (the open-files limit, less the reserve
    /// and the bus).
    public func clientDescriptors(workers: Int) -> Int {
        openFilesLimit - Self.reservedDescriptors - Self.busDescriptors(workers: workers)
    }

    public var cpus: Int
    public var openFilesLimit: Int
    public var registryCapacity: Int
    /// `--max-connections` (per worker), nil: the open-files limit decides.
    public var maxConnectionsPerWorker: Int?
    /// Connections the whole cluster is meant to hold (`--cluster-connections`), nil: not said.
    public var clusterConnections: Int?

    public init(cpus: Int, openFilesLimit: Int, registryCapacity: Int, maxConnectionsPerWorker: Int?,
                clusterConnections: Int?) {
        self.cpus = cpus
        self.openFilesLimit = openFilesLimit
        self.registryCapacity = registryCapacity
        self.maxConnectionsPerWorker = maxConnectionsPerWorker
        self.clusterConnections = clusterConnections
    }

    /// Connections one of `workers` workers can hold: the least of its limits. The registry is
    /// split between 2 × workers slots (old and new generation during a reload).
    public func capacityPerWorker(workers: Int) -> Int {
        let descriptors = max(1, clientDescriptors(workers: workers))
        let registryShare = max(1, registryCapacity / (2 * max(1, workers)))
        return min(descriptors, registryShare, maxConnectionsPerWorker ?? .max)
    }

    /// Descriptors the supervisor holds with `workers` workers: both ends of the bus channel
    /// between every two of the 2 × workers slots (it creates them all at start), one listener per
    /// worker, and the reserve. 80 workers under 20,000 open files fail at start with EMFILE.
    public static func supervisorDescriptors(workers: Int) -> Int {
        let slots = 2 * workers
        return slots * (slots - 1) + workers + reservedDescriptors
    }

    /// The most workers the supervisor can start under its open-files limit (at most `maximumWorkers`).
    public var mostWorkers: Int {
        var workers = 1
        while workers < Self.maximumWorkers && Self.supervisorDescriptors(workers: workers + 1) <= openFilesLimit {
            workers += 1
        }
        return workers
    }

    /// `--workers auto`: one per CPU at least, and enough that together they hold
    /// `clusterConnections` however the kernel spreads them; never more than `mostWorkers`.
    public var automaticWorkers: Int {
        let most = mostWorkers
        var workers = min(max(1, cpus), most)
        guard let wanted = clusterConnections else { return workers }
        while workers < most && Self.busiestShare(of: wanted, workers: workers) > capacityPerWorker(workers: workers) {
            workers += 1
        }
        return workers
    }

    /// Connections the busiest of `workers` workers gets when `total` arrive. SO_REUSEPORT picks a
    /// listener by a hash of each connection's addresses and ports, so a worker's share is binomial:
    /// mean total / workers, standard deviation about its square root. The busiest of 51 workers is
    /// near 2.3 deviations above the mean; 4 leave room for it (at 1,000,000 clients under 20,000
    /// open files the share is 19,608 ± 140: 51 workers of 19,744 filled up and refused the last
    /// clients with 503 while others had room; 53 do not).
    public static func busiestShare(of total: Int, workers: Int) -> Int {
        let mean = (total + workers - 1) / max(1, workers)
        return mean + Int((4 * Double(mean).squareRoot()).rounded(.up))
    }

    /// What cannot hold with `workers` workers, one sentence each (empty: all fits).
    public func warnings(workers: Int) -> [String] {
        var found: [String] = []
        let descriptors = clientDescriptors(workers: workers)
        if let perWorker = maxConnectionsPerWorker, perWorker > descriptors {
            found.append("--max-connections \(perWorker) is more than a worker's open-files limit allows "
                         + "(\(openFilesLimit) - \(Self.reservedDescriptors) - \(Self.busDescriptors(workers: workers)) for the bus "
                         + "= \(descriptors)): accept fails before the 503")
        }
        if workers > mostWorkers {
            found.append("\(workers) workers need \(Self.supervisorDescriptors(workers: workers)) descriptors in the supervisor "
                         + "(bus channels between \(2 * workers) slots), more than its open-files limit \(openFilesLimit): "
                         + "at most \(mostWorkers) workers fit")
        }
        if let wanted = clusterConnections {
            let perWorker = capacityPerWorker(workers: workers)
            if workers * perWorker < wanted {
                found.append("\(workers) workers hold at most \(workers * perWorker) connections (\(perWorker) each: the least of "
                             + "the open-files limit \(openFilesLimit) - \(Self.reservedDescriptors) - the bus, --max-connections and "
                             + "--registry-capacity / \(2 * workers)), fewer than --cluster-connections \(wanted)")
            }
        }
        return found
    }
}
