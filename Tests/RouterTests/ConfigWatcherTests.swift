import Testing

@testable import Router

@Suite("Config file watching")
struct ConfigWatcherTests {
    typealias Stamp = ConfigWatcher.FileStamp

    static func stamp(size: Int64, mtime: Int, inode: UInt64 = 7) -> Stamp {
        Stamp(device: 1, inode: inode, size: size, mtimeSeconds: mtime, mtimeNanos: 0)
    }

    /// Feeds the looks in order; which of them said "reload now".
    static func reloads(_ settler: inout ConfigWatcher.Settler, _ looks: [Stamp?]) -> [Bool] {
        looks.map { settler.look($0) }
    }

    @Test("a change reloads once the file has looked the same twice")
    func settlesBeforeReloading() {
        let loaded = Self.stamp(size: 100, mtime: 1)
        let whole = Self.stamp(size: 120, mtime: 2)
        var settler = ConfigWatcher.Settler(loaded: loaded)
        // Unchanged; then an in-place rewrite seen mid-way (emptied, half
        // written, whole): only the whole file, seen twice, reloads, once.
        let seen = Self.reloads(&settler, [loaded, Self.stamp(size: 0, mtime: 2), Self.stamp(size: 40, mtime: 2), whole, whole, whole])
        #expect(seen == [false, false, false, false, true, false])
        #expect(settler.loaded == whole)
    }

    @Test("a missing file (mid-rename) is no change; a rename over it is one")
    func missingFileWaits() {
        var settler = ConfigWatcher.Settler(loaded: Self.stamp(size: 100, mtime: 1))
        let renamed = Self.stamp(size: 100, mtime: 1, inode: 8)
        // Gone, gone, back renamed, gone again (the wait starts over), back twice.
        let seen = Self.reloads(&settler, [nil, nil, renamed, nil, renamed, renamed])
        #expect(seen == [false, false, false, false, false, true])
    }

    @Test("a change undone before it settles reloads nothing")
    func revertedChange() {
        let loaded = Self.stamp(size: 100, mtime: 1)
        var settler = ConfigWatcher.Settler(loaded: loaded)
        #expect(Self.reloads(&settler, [Self.stamp(size: 90, mtime: 2), loaded, loaded]) == [false, false, false])
    }

    @Test("after a SIGHUP reload the file as loaded is the baseline")
    func hangupResets() {
        var settler = ConfigWatcher.Settler(loaded: Self.stamp(size: 100, mtime: 1))
        let edited = Self.stamp(size: 110, mtime: 2)
        #expect(Self.reloads(&settler, [edited]) == [false])
        settler.reloaded(edited)
        #expect(Self.reloads(&settler, [edited, edited]) == [false, false])
    }
}
