// Package config is the schema of prenv.yaml: its defaults, ${VAR} expansion,
// PRENV_* overrides and validation. Unknown fields are errors that name the
// field's path, so a typo never silently falls back to a default.
package config
