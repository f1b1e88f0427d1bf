// Package mask rewrites a golden database in place so that it holds no
// personal data (issue 11): masking rules name a transformer per column,
// Validate checks them against the database's catalog before anything is
// built, and Apply streams every masked table through the transformers with
// COPY, then proves that every primary key, unique index, check constraint
// and foreign key still holds.
//
// Transformers are deterministic: each output is derived from a keyed
// HMAC-SHA256 of (transformer name, input) with the rules' salt, so the same
// input gives the same output in every table, column and night, and joins on
// natural keys (orders.customer_email = people.email) still work. Fake values
// come from word lists embedded in the binary.
package mask
