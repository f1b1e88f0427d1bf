package rehearsal

import "strings"

// lockMode is a table-level lock mode, ordered from the weakest to the
// strongest as PostgreSQL's documentation lists them ("Explicit Locking",
// table 13.2): each mode conflicts with at least the modes the one before it
// conflicts with, so the order is also "blocks more of the application".
type lockMode uint8

const (
	noLock lockMode = iota
	accessShare
	rowShare
	rowExclusive
	shareUpdateExclusive
	share
	shareRowExclusive
	exclusive
	accessExclusive
)

// lockModeNames are pg_locks.mode's spellings, by mode.
var lockModeNames = [...]string{
	noLock:               "",
	accessShare:          "AccessShareLock",
	rowShare:             "RowShareLock",
	rowExclusive:         "RowExclusiveLock",
	shareUpdateExclusive: "ShareUpdateExclusiveLock",
	share:                "ShareLock",
	shareRowExclusive:    "ShareRowExclusiveLock",
	exclusive:            "ExclusiveLock",
	accessExclusive:      "AccessExclusiveLock",
}

// parseLockMode maps pg_locks.mode to a lockMode; noLock for anything that
// is not a table-level mode (such as SIReadLock).
func parseLockMode(s string) lockMode {
	for m, name := range lockModeNames {
		if name == s && name != "" {
			return lockMode(m)
		}
	}
	return noLock
}

// String is the mode as the documentation and LOCK spell it: "ACCESS EXCLUSIVE".
func (m lockMode) String() string {
	if m == noLock || int(m) >= len(lockModeNames) {
		return ""
	}
	name := strings.TrimSuffix(lockModeNames[m], "Lock")
	var b strings.Builder
	for i, r := range name {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

// modeFromName parses the String form back ("ACCESS EXCLUSIVE").
func modeFromName(s string) lockMode {
	for m := accessShare; m <= accessExclusive; m++ {
		if m.String() == s {
			return m
		}
	}
	return noLock
}

// blocks says in words what the application cannot do on a table while the
// mode is held, from the documentation's conflict table.
func (m lockMode) blocks() string {
	switch m {
	case accessExclusive:
		return "every read and write"
	case exclusive:
		return "every write and SELECT ... FOR UPDATE"
	case shareRowExclusive, share:
		return "every INSERT, UPDATE and DELETE"
	case shareUpdateExclusive:
		return "other schema changes and VACUUM, but not reads or writes"
	case rowExclusive:
		return "schema changes and CREATE INDEX, but not reads or writes"
	default:
		return "only ACCESS EXCLUSIVE schema changes"
	}
}
