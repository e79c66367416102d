package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Event is a Kubernetes-style event about an object: something that happened, for humans to read.
type Event struct {
	ID                         int64  // assigned by the store
	Kind, Namespace, Name, UID string // the involved object
	Type                       string // "Normal" (the default) or "Warning"
	Reason                     string // CamelCase reason code, e.g. "Pulled"
	Message                    string
	Count                      int32     // how often it happened in a row; assigned by the store
	FirstTimestamp             time.Time // assigned by the store
	LastTimestamp              time.Time // assigned by the store
}

// Event types.
const (
	EventNormal  = "Normal"
	EventWarning = "Warning"
)

// RecordEvent records e about its object. If it repeats the object's most recent event (same UID, type,
// reason and message) that event's Count and LastTimestamp are bumped instead of adding a row. Only the
// newest Options.EventsPerObject events of an object are kept.
func (s *Store) RecordEvent(ctx context.Context, e Event) error {
	if e.Type == "" {
		e.Type = EventNormal
	}
	var problems []string
	if e.Kind == "" || e.Name == "" {
		problems = append(problems, "kind and name of the involved object are required")
	}
	if e.Type != EventNormal && e.Type != EventWarning {
		problems = append(problems, fmt.Sprintf("type %q is neither %q nor %q", e.Type, EventNormal, EventWarning))
	}
	if e.Reason == "" {
		problems = append(problems, "reason is required")
	}
	if len(problems) > 0 {
		return fmt.Errorf("recording event about %s: %s", ref(e.Kind, e.Namespace, e.Name), strings.Join(problems, "; "))
	}

	now := s.opts.Now().UnixNano()
	return s.write(ctx, func(t *txn) error {
		var (
			id                        int64
			uid, typ, reason, message string
		)
		err := t.QueryRowContext(ctx, `SELECT id, uid, type, reason, message FROM events
			WHERE kind = ? AND namespace = ? AND name = ? ORDER BY id DESC LIMIT 1`,
			e.Kind, e.Namespace, e.Name).Scan(&id, &uid, &typ, &reason, &message)
		switch {
		case err == nil && uid == e.UID && typ == e.Type && reason == e.Reason && message == e.Message:
			_, err = t.ExecContext(ctx, `UPDATE events SET count = count + 1, last_time = ? WHERE id = ?`, now, id)
			if err != nil {
				return fmt.Errorf("recording event: %w", err)
			}
			return nil
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("recording event: %w", err)
		}
		_, err = t.ExecContext(ctx, `INSERT INTO events (kind, namespace, name, uid, type, reason, message, count,
			first_time, last_time) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)`,
			e.Kind, e.Namespace, e.Name, e.UID, e.Type, e.Reason, e.Message, now, now)
		if err != nil {
			return fmt.Errorf("recording event: %w", err)
		}
		// Drop all but the newest EventsPerObject events of the object.
		_, err = t.ExecContext(ctx, `DELETE FROM events WHERE kind = ?1 AND namespace = ?2 AND name = ?3
			AND id <= (SELECT id FROM events WHERE kind = ?1 AND namespace = ?2 AND name = ?3
				ORDER BY id DESC LIMIT 1 OFFSET ?4)`,
			e.Kind, e.Namespace, e.Name, s.opts.EventsPerObject)
		if err != nil {
			return fmt.Errorf("trimming events: %w", err)
		}
		return nil
	})
}

// EventFilter selects events. Empty fields match anything.
type EventFilter struct {
	Kind, Namespace, Name string
	// UID selects the events of one incarnation of the object: a deleted object's events
	// do not show on a new object of the same name.
	UID   string
	Limit int // most recent events returned; 0 means 500
}

// Events returns the most recent events matching f, oldest first (by LastTimestamp, then ID).
func (s *Store) Events(ctx context.Context, f EventFilter) ([]Event, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if f.Limit <= 0 {
		f.Limit = 500
	}
	cond, args := where("kind", f.Kind, "namespace", f.Namespace, "name", f.Name, "uid", f.UID)
	rows, err := s.rdb.QueryContext(ctx, `SELECT id, kind, namespace, name, uid, type, reason, message, count,
		first_time, last_time FROM events`+cond+` ORDER BY last_time DESC, id DESC LIMIT ?`, append(args, f.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("reading events: %w", err)
	}
	defer rows.Close()
	var events []Event
	for rows.Next() {
		var (
			e           Event
			first, last int64
		)
		if err := rows.Scan(&e.ID, &e.Kind, &e.Namespace, &e.Name, &e.UID, &e.Type, &e.Reason, &e.Message,
			&e.Count, &first, &last); err != nil {
			return nil, fmt.Errorf("reading events: %w", err)
		}
		e.FirstTimestamp, e.LastTimestamp = time.Unix(0, first).UTC(), time.Unix(0, last).UTC()
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading events: %w", err)
	}
	slices.Reverse(events)
	return events, nil
}
