// Package env is prenv's domain: an environment is identified by its Key
// (repository + pull request number). From the key come deterministic names,
// each valid for its target, and the owner labels every resource carries from
// the moment it is created.
package env
