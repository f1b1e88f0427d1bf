package dbclone

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// SelectOne connects to url and runs SELECT 1 within timeout: the check
// that a database answers its users.
func SelectOne(ctx context.Context, url string, timeout time.Duration) error {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := pgx.Connect(cctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var one int
	return conn.QueryRow(cctx, "SELECT 1").Scan(&one)
}
