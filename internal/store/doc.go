// Package store is the embedded state of citadel serve: resources (Kubernetes-style objects), their status,
// and the events recorded about them, kept in SQLite through the pure-Go driver modernc.org/sqlite.
//
// The store works on generic records ([Object], [Event]); it knows nothing about specific kinds.
//
// # Concurrency contract
//
//   - One process owns a data directory: [Open] takes an exclusive flock on dir/LOCK and a second process
//     gets a clear error naming the holder's pid.
//   - Within the process, all methods are safe for concurrent use. Writes are serialised by one writer lock
//     and run as BEGIN IMMEDIATE transactions on a dedicated connection, so writers never see SQLITE_BUSY;
//     reads use a separate pool of read-only connections and never wait for writers (WAL mode).
//   - Every write of an object takes the next value of a store-wide counter as its ResourceVersion, like an
//     etcd revision. A caller that passes a non-zero ResourceVersion gets a [*ConflictError] when the object
//     has moved on (optimistic concurrency).
//   - Watch events are handed to watchers after the transaction commits, while the writer lock is still
//     held, so every watcher sees changes in ResourceVersion order. Handing off never blocks: a watcher that
//     falls more than [Options.WatchBuffer] events behind is closed with [ErrWatchOverflow].
//   - Objects returned by the store are copies; callers may modify them freely.
package store
