package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Options tune a [Store]. The zero value is ready to use.
type Options struct {
	EventsPerObject int              // events kept per object, oldest dropped first; default 100
	Now             func() time.Time // clock; default time.Now
	WatchBuffer     int              // events a watcher may lag behind before it is closed; default 256
}

func (o Options) withDefaults() Options {
	if o.EventsPerObject <= 0 {
		o.EventsPerObject = 100
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.WatchBuffer <= 0 {
		o.WatchBuffer = 256
	}
	return o
}

// Store is an open data directory. Its methods are safe for concurrent use; see the package
// documentation for the concurrency contract.
type Store struct {
	opts Options
	lock *dirLock
	wdb  *sql.DB // one connection, BEGIN IMMEDIATE; used only while holding wlock
	rdb  *sql.DB // read-only pool

	closed atomic.Bool

	// wlock serialises writes (a channel so that waiting honours ctx). Holding it also guards rv and
	// orders watch fan-out.
	wlock chan struct{}
	rv    int64 // last assigned resourceVersion, mirrored in meta; we are the only writer

	watchMu  sync.Mutex
	watchers map[*Watcher]struct{}
	watchWG  sync.WaitGroup

	hookMu sync.Mutex
	hooks  []deleteHook
}

// Open opens (creating if needed) the store in dir: the database dir/citadel.db (WAL mode) and an exclusive
// lock on dir/LOCK, so that a second process opening the same dir gets an error naming the first one's pid.
// It applies any schema migrations the database lacks and refuses a database from a newer citadel.
// opts may be the zero value.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s := &Store{
		opts:     opts.withDefaults(),
		lock:     lock,
		wlock:    make(chan struct{}, 1),
		watchers: make(map[*Watcher]struct{}),
	}
	if err := s.open(ctx, filepath.Join(dir, "citadel.db")); err != nil {
		s.closeDBs()
		lock.unlock() //nolint:errcheck // reporting the open error instead
		return nil, fmt.Errorf("opening store in %s: %w", dir, err)
	}
	return s, nil
}

func (s *Store) open(ctx context.Context, path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	// A file: URI so that unusual characters in the path are escaped; the pragmas run on every new
	// connection. busy_timeout only matters for the reader pool: writers are serialised by wlock.
	dsn := (&url.URL{Scheme: "file", Path: abs}).String() +
		"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)"

	if s.wdb, err = sql.Open("sqlite", dsn+"&_txlock=immediate"); err != nil {
		return err
	}
	s.wdb.SetMaxOpenConns(1)
	if err := migrate(ctx, s.wdb, migrations, s.opts.Now()); err != nil {
		return err
	}
	if err := s.wdb.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'resource_version'`).Scan(&s.rv); err != nil {
		return fmt.Errorf("reading resourceVersion: %w", err)
	}

	if s.rdb, err = sql.Open("sqlite", dsn+"&_pragma=query_only(1)"); err != nil {
		return err
	}
	s.rdb.SetMaxOpenConns(4)
	s.rdb.SetMaxIdleConns(4)
	return s.rdb.PingContext(ctx)
}

// Close stops all watchers (their channels close and Err returns ErrClosed), closes the database and
// releases the directory lock. It waits for a write in progress to finish. Calling it again does nothing.
func (s *Store) Close() error {
	s.wlock <- struct{}{} // no write in progress from here on
	defer func() { <-s.wlock }()
	if s.closed.Swap(true) {
		return nil
	}

	s.watchMu.Lock()
	for w := range s.watchers {
		w.finish(ErrClosed)
	}
	s.watchMu.Unlock()
	s.watchWG.Wait()

	return errors.Join(s.closeDBs(), s.lock.unlock())
}

func (s *Store) closeDBs() error {
	var errs []error
	for _, db := range []*sql.DB{s.rdb, s.wdb} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	return errors.Join(errs...)
}

// errRollback, returned from a write function, rolls the transaction back without reporting an error
// (dry runs).
var errRollback = errors.New("roll back")

// txn is the state of one write transaction.
type txn struct {
	*sql.Tx
	rv     int64        // last resourceVersion assigned in this transaction
	events []WatchEvent // published after commit
}

// nextRV assigns the next store-wide resourceVersion.
func (t *txn) nextRV() int64 {
	t.rv++
	return t.rv
}

// emit queues a watch event. The object is copied so callers may go on using theirs.
func (t *txn) emit(typ EventType, obj Object) {
	t.events = append(t.events, WatchEvent{Type: typ, Object: obj.clone()})
}

// write runs fn in a BEGIN IMMEDIATE transaction while holding the writer lock. After a successful commit
// it publishes the events fn queued, still under the lock, so watchers see them in resourceVersion order.
func (s *Store) write(ctx context.Context, fn func(t *txn) error) error {
	select {
	case s.wlock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.wlock }()
	if s.closed.Load() {
		return ErrClosed
	}

	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	t := &txn{Tx: tx, rv: s.rv}
	if err := fn(t); err != nil {
		if errors.Is(err, errRollback) {
			return nil
		}
		return err
	}
	if t.rv != s.rv {
		if _, err := tx.ExecContext(ctx, `UPDATE meta SET value = ? WHERE key = 'resource_version'`, t.rv); err != nil {
			return fmt.Errorf("saving resourceVersion: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	s.rv = t.rv
	s.publish(t.events)
	return nil
}

// queryer is what reads need from *sql.DB and *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}
