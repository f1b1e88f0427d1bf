package rehearsal

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxStatement is how much of a statement a report keeps: enough to
// recognize it in the migration's file.
const maxStatement = 200

// splitStatements splits SQL text into statements at semicolons outside
// quotes, dollar quotes and comments. pg_stat_activity.query holds what the
// client sent as one query: one statement for psql -f, a whole file for
// tools that send it at once.
func splitStatements(sql string) []string {
	var out []string
	start := 0
	flush := func(end int) {
		if s := strings.TrimSpace(sql[start:end]); s != "" {
			out = append(out, s)
		}
		start = end + 1
	}
	for i := 0; i < len(sql); i++ {
		switch c := sql[i]; {
		case c == '\'' || c == '"':
			for i++; i < len(sql); i++ {
				if sql[i] == c {
					if i+1 < len(sql) && sql[i+1] == c {
						i++
						continue
					}
					break
				}
			}
		case c == '-' && strings.HasPrefix(sql[i:], "--"):
			if j := strings.IndexByte(sql[i:], '\n'); j >= 0 {
				i += j
			} else {
				i = len(sql)
			}
		case c == '/' && strings.HasPrefix(sql[i:], "/*"):
			if j := strings.Index(sql[i+2:], "*/"); j >= 0 {
				i += j + 3
			} else {
				i = len(sql)
			}
		case c == '$':
			// $tag$ ... $tag$ (a $1 parameter is not a tag)
			j := i + 1
			for j < len(sql) && (sql[j] == '_' || unicode.IsLetter(rune(sql[j])) || (j > i+1 && unicode.IsDigit(rune(sql[j])))) {
				j++
			}
			if j < len(sql) && sql[j] == '$' {
				tag := sql[i : j+1]
				if k := strings.Index(sql[j+1:], tag); k >= 0 {
					i = j + 1 + k + len(tag) - 1
				} else {
					i = len(sql)
				}
			}
		case c == ';':
			flush(i)
		}
	}
	if start < len(sql) {
		flush(len(sql))
	}
	return out
}

// statementMatching returns the first statement of query that contains
// every needle, case-insensitively, or "".
func statementMatching(query string, needles ...string) string {
	for _, s := range splitStatements(query) {
		if containsAll(s, needles) {
			return s
		}
	}
	return ""
}

func containsAll(s string, needles []string) bool {
	l := strings.ToLower(s)
	for _, n := range needles {
		if !strings.Contains(l, strings.ToLower(n)) {
			return false
		}
	}
	return true
}

// shorten collapses a statement's whitespace and comments' line breaks and
// cuts it to maxStatement characters.
func shorten(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.TrimSuffix(s, ";")
	if utf8.RuneCountInString(s) <= maxStatement {
		return s
	}
	r := []rune(s)
	return strings.TrimSpace(string(r[:maxStatement-1])) + "…"
}

var (
	sqlComments     = regexp.MustCompile(`(?s)--[^\n]*|/\*.*?\*/`)
	createIndexConc = regexp.MustCompile(`(?i)^\s*create\s+(unique\s+)?index\s+concurrently\b`)
)

// concurrentIndex says whether stmt is CREATE [UNIQUE] INDEX CONCURRENTLY,
// by its keywords, not by a comment or a name that says "concurrently".
func concurrentIndex(stmt string) bool {
	return createIndexConc.MatchString(sqlComments.ReplaceAllString(stmt, " "))
}
