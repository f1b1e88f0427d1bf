// Package rehearsal watches a pull request's migration run on its preview
// environment's database and reports what the migration would do to
// production (issue 12): how long it took, the schema it changed, the rows it
// wrote, the locks it held and who waited on them, the tables and indexes it
// rewrote, and warnings a developer can act on before merging.
//
// The golden database is a copy of production, so what the migration does
// here — a table rewritten under an ACCESS EXCLUSIVE lock for 40 seconds, a
// foreign key validated over 30 million rows — is what it will do there.
//
// A Watch connects with its own connection, reads the database just before
// the migration (Begin), samples pg_locks and pg_stat_activity every 50 ms
// while it runs, and reads the database again after it (Finish).
// Everything is read from PostgreSQL's catalogs and statistics views with
// the environment's own role: no external tool, no extension, no privilege
// beyond what the application has (a role sees its own sessions' queries,
// which are the migration's). Report renders as Markdown for the pull
// request's comment and as text for a terminal, and is JSON for a store.
//
//	w, err := rehearsal.Begin(ctx, dsn, rehearsal.Options{
//		ApplicationName: "prenv-migrate", // the migrate command runs with PGAPPNAME=prenv-migrate
//		Baseline:        &goldenSchema,   // ReadSchema at the environment's first up
//	})
//	if err != nil { ... }
//	migrateErr := runMigrate(ctx)
//	report, err := w.Finish(ctx, migrateErr)
//	comment := report.Markdown()
//
// What sampling can and cannot see is part of the contract: see Finish for
// row counts, LockHold and Wait for lock times, Warning for each rule.
package rehearsal
