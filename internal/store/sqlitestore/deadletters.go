package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/evp-dev/evp/internal/store"
)

var _ store.DeadLetters = (*Store)(nil)

// A dead letter's id is its events_dlq row id in decimal; the list cursor is the id of the
// last letter of a page (the next page holds smaller ids: newest first).

// parseLetterID turns an id (or cursor) back into a row id; ok is false for anything this
// store did not hand out.
func parseLetterID(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || strconv.FormatInt(n, 10) != s {
		return 0, false
	}
	return n, true
}

const letterCols = `id, COALESCE(event_id, ''), data, error, attempts, failed_at`

func scanLetter(sc interface{ Scan(...any) error }) (store.StoredDeadLetter, error) {
	var l store.StoredDeadLetter
	var id, failedAt int64
	if err := sc.Scan(&id, &l.EventID, &l.Data, &l.Error, &l.Attempts, &failedAt); err != nil {
		return l, err
	}
	l.ID = strconv.FormatInt(id, 10)
	l.FailedAt = time.Unix(0, failedAt).UTC()
	return l, nil
}

// ListDeadLetters implements store.DeadLetters, newest (highest id) first.
func (s *Store) ListDeadLetters(ctx context.Context, cursor string, limit int) ([]store.StoredDeadLetter, string, error) {
	if limit <= 0 {
		return nil, "", fmt.Errorf("sqlitestore: list dead letters: limit %d", limit)
	}
	var before int64 = 1<<63 - 1
	if cursor != "" {
		n, ok := parseLetterID(cursor)
		if !ok {
			return nil, "", store.ErrInvalidCursor
		}
		before = n
	}
	// One row more than asked says whether another page follows.
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+letterCols+` FROM events_dlq WHERE id < ? ORDER BY id DESC LIMIT ?`, before, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("sqlitestore: list dead letters: %w", err)
	}
	defer rows.Close()
	letters := make([]store.StoredDeadLetter, 0, limit)
	more := false
	for rows.Next() {
		if len(letters) == limit {
			more = true
			break
		}
		l, err := scanLetter(rows)
		if err != nil {
			return nil, "", fmt.Errorf("sqlitestore: list dead letters: %w", err)
		}
		letters = append(letters, l)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("sqlitestore: list dead letters: %w", err)
	}
	next := ""
	if more {
		next = letters[len(letters)-1].ID
	}
	return letters, next, nil
}

// GetDeadLetter implements store.DeadLetters.
func (s *Store) GetDeadLetter(ctx context.Context, id string) (store.StoredDeadLetter, error) {
	n, ok := parseLetterID(id)
	if !ok {
		return store.StoredDeadLetter{}, store.ErrNotFound
	}
	l, err := scanLetter(s.rdb.QueryRowContext(ctx, `SELECT `+letterCols+` FROM events_dlq WHERE id = ?`, n))
	if errors.Is(err, sql.ErrNoRows) {
		return store.StoredDeadLetter{}, store.ErrNotFound
	}
	if err != nil {
		return store.StoredDeadLetter{}, fmt.Errorf("sqlitestore: get dead letter: %w", err)
	}
	return l, nil
}

// deleteChunk bounds the ids of one DELETE statement (SQLite's variable limit is far above).
const deleteChunk = 500

// DeleteDeadLetters implements store.DeadLetters in one transaction. Ids this store never
// handed out count as absent.
func (s *Store) DeleteDeadLetters(ctx context.Context, ids []string) (deleted int, err error) {
	nums := make([]any, 0, len(ids))
	seen := make(map[int64]bool, len(ids))
	for _, id := range ids {
		if n, ok := parseLetterID(id); ok && !seen[n] {
			seen[n] = true
			nums = append(nums, n)
		}
	}
	if len(nums) == 0 {
		return 0, nil
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: begin: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	for start := 0; start < len(nums); start += deleteChunk {
		chunk := nums[start:min(start+deleteChunk, len(nums))]
		res, err := tx.ExecContext(ctx, `DELETE FROM events_dlq WHERE id IN (?`+strings.Repeat(",?", len(chunk)-1)+`)`, chunk...)
		if err != nil {
			return 0, fmt.Errorf("sqlitestore: delete dead letters: %w", err)
		}
		n, _ := res.RowsAffected()
		deleted += int(n)
	}
	if err = tx.Commit(); err != nil {
		return 0, fmt.Errorf("sqlitestore: delete dead letters commit: %w", err)
	}
	return deleted, nil
}
