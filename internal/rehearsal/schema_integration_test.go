package rehearsal_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/prenv/prenv/internal/rehearsal"
)

const kindsBefore = `
CREATE EXTENSION citext VERSION '1.4';
CREATE EXTENSION hstore;
CREATE TABLE accounts (
  id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email citext NOT NULL,
  plan text DEFAULT 'free',
  balance integer NOT NULL DEFAULT 0,
  legacy text,
  CONSTRAINT accounts_balance_check CHECK (balance >= 0)
);
CREATE TABLE invoices (id bigint PRIMARY KEY, account_id integer NOT NULL, cents integer NOT NULL,
  cents_with_tax integer GENERATED ALWAYS AS (cents * 2) STORED);
CREATE TABLE audit (at timestamptz);
CREATE INDEX accounts_plan_idx ON accounts (plan);
CREATE INDEX invoices_cents_idx ON invoices (cents);
CREATE VIEW big_accounts AS SELECT id FROM accounts WHERE id > 1000;
CREATE VIEW plans AS SELECT DISTINCT plan FROM accounts;
CREATE MATERIALIZED VIEW totals AS SELECT account_id, sum(cents) AS cents FROM invoices GROUP BY 1;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE FUNCTION fee(integer) RETURNS integer LANGUAGE sql AS 'SELECT $1 / 10';
CREATE FUNCTION gone() RETURNS integer LANGUAGE sql AS 'SELECT 1';
CREATE TRIGGER accounts_touch BEFORE UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION touch();
CREATE TRIGGER invoices_touch BEFORE UPDATE ON invoices FOR EACH ROW EXECUTE FUNCTION touch();
`

// kindsMigration changes, adds and drops an object of every kind.
const kindsMigration = `
ALTER TABLE accounts ALTER COLUMN balance TYPE bigint;
ALTER TABLE accounts ALTER COLUMN plan SET DEFAULT 'trial', ALTER COLUMN plan SET NOT NULL;
ALTER TABLE accounts DROP COLUMN legacy;
ALTER TABLE accounts ADD COLUMN region text NOT NULL DEFAULT 'eu';
ALTER TABLE invoices ALTER COLUMN cents DROP NOT NULL;
ALTER TABLE invoices ADD CONSTRAINT invoices_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) NOT VALID;
ALTER TABLE accounts DROP CONSTRAINT accounts_balance_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_balance_check CHECK (balance >= -100);
DROP INDEX accounts_plan_idx;
CREATE INDEX accounts_plan_idx ON accounts (plan, region);
CREATE UNIQUE INDEX accounts_email_idx ON accounts (lower(email::text));
DROP INDEX invoices_cents_idx;
DROP TRIGGER invoices_touch ON invoices;
ALTER TABLE accounts DISABLE TRIGGER accounts_touch;
CREATE TRIGGER invoices_audit AFTER INSERT ON invoices FOR EACH ROW EXECUTE FUNCTION touch();
CREATE OR REPLACE VIEW big_accounts AS SELECT id FROM accounts WHERE id > 5000;
DROP VIEW plans;
CREATE VIEW regions AS SELECT DISTINCT region FROM accounts;
CREATE OR REPLACE FUNCTION fee(integer) RETURNS integer LANGUAGE sql AS 'SELECT $1 / 20';
DROP FUNCTION gone();
CREATE FUNCTION refund(bigint) RETURNS void LANGUAGE sql AS 'SELECT';
DROP TABLE audit;
CREATE TABLE payouts (id bigint PRIMARY KEY, cents bigint NOT NULL);
ALTER EXTENSION citext UPDATE TO '1.6';
DROP EXTENSION hstore;
CREATE EXTENSION pg_trgm;
`

// TestReadSchema_DiffSeesEveryKindOfChangeInTheCatalogs reads a schema
// with an object of every kind from PostgreSQL's catalogs, changes each,
// and checks the diff a developer reads.
func TestReadSchema_DiffSeesEveryKindOfChangeInTheCatalogs(t *testing.T) {
	c := fixture(t)
	ctx := context.Background()
	shared.mu.Lock()
	shared.n++
	db := fmt.Sprintf("kinds_%d", shared.n)
	shared.mu.Unlock()
	if err := c.srv.Exec(ctx, "postgres", "CREATE DATABASE "+db+" OWNER "+appRole); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.srv.Exec(context.Background(), "postgres", "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)") })
	conn, err := pgx.Connect(ctx, c.dsn(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, kindsBefore); err != nil {
		t.Fatal(err)
	}
	before, err := rehearsal.ReadSchema(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"public.citext", "public.hstore"} {
		for _, f := range before.Functions {
			if strings.HasPrefix(f.Name, name) {
				t.Errorf("ReadSchema lists %s, a function of an extension", f.Name)
			}
		}
	}
	if _, err := conn.Exec(ctx, kindsMigration); err != nil {
		t.Fatal(err)
	}
	after, err := rehearsal.ReadSchema(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ch := range rehearsal.Diff(before, after) {
		got = append(got, fmt.Sprintf("%s %s %s/%s: %s", ch.Action, ch.Kind, ch.Table, ch.Object, ch.Detail))
	}
	want := []string{
		"changed column accounts/plan: default 'free'::text -> 'trial'::text, nullable -> not null",
		"changed column accounts/balance: type integer -> bigint",
		"added column accounts/region: text not null default 'eu'::text",
		"dropped column accounts/legacy: text",
		"changed constraint accounts/accounts_balance_check: CHECK ((balance >= 0)) -> CHECK ((balance >= '-100'::integer))",
		"added index accounts/accounts_email_idx: unique btree (lower((email)::text))",
		"changed index accounts/accounts_plan_idx: btree (plan) -> btree (plan, region)",
		"changed trigger accounts/accounts_touch: enabled -> disabled",
		"dropped table /audit: ",
		"changed column invoices/cents: not null -> nullable",
		"added constraint invoices/invoices_account_id_fkey: FOREIGN KEY (account_id) REFERENCES accounts(id) NOT VALID",
		"dropped index invoices/invoices_cents_idx: btree (cents)",
		"added trigger invoices/invoices_audit: AFTER INSERT ON public.invoices FOR EACH ROW EXECUTE FUNCTION touch()",
		"dropped trigger invoices/invoices_touch: ",
		"added table /payouts: id bigint, cents bigint",
		"changed view /big_accounts: definition changed",
		"dropped view /plans: ",
		"added view /regions: ",
		"changed function /fee(integer): definition changed",
		"dropped function /gone(): ",
		"added function /refund(bigint): function returning void, language sql",
		"changed extension /citext: version 1.4 -> 1.6",
		"dropped extension /hstore: ",
		"added extension /pg_trgm: version 1.6",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("diff:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if d := rehearsal.Diff(after, after); len(d) != 0 {
		t.Errorf("a schema differs from itself: %+v", d)
	}
}
