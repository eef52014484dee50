import Foundation

/// Transparent huge pages for the heap.
///
/// A service holding a million users' profiles touches a few dozen cache lines per event, spread
/// over gigabytes. With 4 KB pages nearly every one of them is also a TLB miss, and inside a
/// virtual machine a page walk costs several memory reads of its own. glibc backs its heap with
/// 2 MB pages when the tunable `glibc.malloc.hugetlb=1` is set, which it reads only when a process
/// starts. So a process started without it starts itself again with it: same pid, same
/// arguments, nothing opened yet. The feature service's fold ran 1.2-1.3x faster with it.
///
/// Only the main arena (the `brk` heap) gets them, though: the 64 MB heaps glibc maps for the
/// arenas of other threads stay on 4 KB pages (at a million users, 110 MB of the fold's 1.7 GB
/// was on huge pages when it ran off the main thread, as it does in the service, against
/// 1.67 GB on it, and it folded 1.4-1.75x slower). So every thread allocates from the main
/// arena (`arena_max=1`); each thread's cache of small chunks still spares it the arena's lock
/// for most calls (ingest at 1 and 8 producers measured the same or faster).
public enum HugePages {
    /// `hugetlb` first: glibc 2.36 leaves only the first tunable of the list in the
    /// environment the process sees (it applies both), and `inUse` looks for that one.
    static let tunable = "glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1"

    /// Re-executes this process with the tunable set, once. Does nothing when
    /// `GLIBC_TUNABLES` is already set (the operator's choice, or this is the second start),
    /// when the kernel has transparent huge pages off, or off Linux. Call it first in `main`.
    public static func adoptForHeap() {
        #if os(Linux)
        guard ProcessInfo.processInfo.environment["GLIBC_TUNABLES"] == nil, kernelOffers else { return }
        setenv("GLIBC_TUNABLES", tunable, 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // Still here: exec failed; run as started.
        unsetenv("GLIBC_TUNABLES")
        #endif
    }

    /// Whether the kernel gives huge pages to memory that asks for them ("always" or "madvise").
    static var kernelOffers: Bool {
        guard let mode = try? String(contentsOfFile: "/sys/kernel/mm/transparent_hugepage/enabled", encoding: .utf8) else { return false }
        return !mode.contains("[never]")
    }

    /// Whether this process runs with the tunable.
    public static var inUse: Bool {
        ProcessInfo.processInfo.environment["GLIBC_TUNABLES"]?.contains("glibc.malloc.hugetlb=1") ?? false
    }
}
