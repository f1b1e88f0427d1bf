package rehearsal

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"
)

// Text renders the report for a terminal (prenv status): a summary line,
// the warnings, then each section that has something to show.
func (r Report) Text() string {
	var b strings.Builder
	b.WriteString(r.summary(false) + "\n")
	if r.Failed != "" {
		b.WriteString("\nError:\n" + indent(strings.TrimSpace(r.Failed), "  ") + "\n")
	}
	if len(r.Warnings) == 0 {
		b.WriteString("\nNo warnings.\n")
	} else {
		fmt.Fprintf(&b, "\nWarnings (%d)\n", len(r.Warnings))
		for _, w := range r.Warnings {
			fmt.Fprintf(&b, "  ! %s on %s\n", w.Code, w.Table)
			b.WriteString(indent(wrap(w.Message, 96), "    ") + "\n")
			if w.Statement != "" {
				b.WriteString("    statement: " + w.Statement + "\n")
			}
		}
	}
	if len(r.Earlier) > 0 {
		fmt.Fprintf(&b, "\nEarlier warnings, from earlier migrations on this database (%d)\n", len(r.Earlier))
		for _, e := range r.Earlier {
			fmt.Fprintf(&b, "  ! %s on %s (commit %s)\n", e.Code, e.Table, shortCommit(e.Commit))
		}
	}
	if len(r.SchemaDiff) == 0 {
		fmt.Fprintf(&b, "\nNo schema changes %s.\n", r.diffSince())
	} else {
		fmt.Fprintf(&b, "\nSchema changes %s (%d)\n", r.diffSince(), len(r.SchemaDiff))
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, c := range r.SchemaDiff {
			fmt.Fprintf(tw, "  %s %s\t%s\t%s\n", actionMark(c.Action, "~"), c.Kind, c.name(), c.Detail)
		}
		tw.Flush()
	}
	if len(r.Locks) > 0 {
		fmt.Fprintf(&b, "\nLocks held by the migration (%d)\n", len(r.Locks))
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  TABLE\tLOCK\tHELD\tROWS\tSIZE\tSTATEMENT")
		for _, l := range r.Locks {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", l.Table, l.Mode, seconds(l.Seconds), count(l.Rows), bytesText(l.Bytes), clip(orDash(l.Statement), 60))
		}
		tw.Flush()
	}
	if len(r.Waits) > 0 {
		fmt.Fprintf(&b, "\nWaits (%d)\n", len(r.Waits))
		for _, w := range r.Waits {
			fmt.Fprintf(&b, "  %s waited %s for %s, held by %s\n", w.Waiter.text(), seconds(w.Seconds), w.what(), w.Blocker.text())
		}
	}
	if len(r.Rewrites) > 0 {
		fmt.Fprintf(&b, "\nRewrites (%d)\n", len(r.Rewrites))
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, w := range r.Rewrites {
			fmt.Fprintf(tw, "  %s\t%s\t%s -> %s\n", w.Kind, w.name(), bytesText(w.BytesBefore), bytesText(w.BytesAfter))
		}
		tw.Flush()
	}
	if len(r.Rows) > 0 {
		fmt.Fprintf(&b, "\nRows written (%s)\n", plural(len(r.Rows), "table"))
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		cells := [][]string{{"INSERTED", "UPDATED", "DELETED"}}
		for _, d := range r.Rows {
			cells = append(cells, []string{count(d.Inserted), count(d.Updated), count(d.Deleted)})
		}
		width := make([]int, 3)
		for _, row := range cells {
			for i, c := range row {
				width[i] = max(width[i], len(c))
			}
		}
		for i, row := range cells {
			table := "TABLE"
			if i > 0 {
				table = r.Rows[i-1].Table
			}
			fmt.Fprintf(tw, "  %s\t%*s\t%*s\t%*s\n", table, width[0], row[0], width[1], row[1], width[2], row[2])
		}
		tw.Flush()
	}
	if len(r.Notes) > 0 {
		b.WriteString("\nNotes\n")
		for _, n := range r.Notes {
			b.WriteString(indent(wrap("- "+n, 96), "  ") + "\n")
		}
	}
	return printable(b.String())
}

// printable replaces control characters but line breaks and tabs: names
// and statements come from the pull request, and a terminal would obey an
// escape sequence among them.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || !unicode.IsControl(r) {
			return r
		}
		return '?'
	}, s)
}

// Markdown renders the report for a pull request comment: the summary and
// the warnings in view, the rest in a collapsed <details>.
func (r Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "### Migration rehearsal: %s\n\n%s\n", r.title(), r.summary(true))
	if r.Failed != "" {
		b.WriteString("\n**The migration failed:**\n\n" + fence(strings.TrimSpace(r.Failed), "") + "\n")
	}
	if len(r.Warnings) > 0 {
		b.WriteString("\n")
		for _, w := range r.Warnings {
			fmt.Fprintf(&b, "- :warning: **%s** on %s — %s\n", w.Code, code(w.Table), mdEscape(w.Message))
			if w.Statement != "" {
				fmt.Fprintf(&b, "  %s\n", code(w.Statement))
			}
		}
	}
	b.WriteString(r.earlierMarkdown())
	var parts []string
	if len(r.SchemaDiff) > 0 {
		parts = append(parts, plural(len(r.SchemaDiff), "schema change"))
	}
	if len(r.Locks) > 0 {
		parts = append(parts, plural(len(r.Locks), "lock"))
	}
	if len(r.Waits) > 0 {
		parts = append(parts, plural(len(r.Waits), "wait"))
	}
	if len(r.Rewrites) > 0 {
		parts = append(parts, plural(len(r.Rewrites), "rewrite"))
	}
	if len(r.Rows) > 0 {
		parts = append(parts, plural(len(r.Rows), "table")+" written")
	}
	if len(parts) == 0 {
		b.WriteString("\nNo schema changes, locks, rewrites or rows written.\n")
		return b.String()
	}
	fmt.Fprintf(&b, "\n<details><summary>%s</summary>\n", strings.Join(parts, ", "))
	if len(r.SchemaDiff) > 0 {
		fmt.Fprintf(&b, "\n**Schema changes %s**\n\n", r.diffSince())
		var d strings.Builder
		for i, c := range r.SchemaDiff {
			if i > 0 {
				d.WriteString("\n")
			}
			fmt.Fprintf(&d, "%s %s %s", actionMark(c.Action, "!"), c.Kind, c.name())
			if c.Detail != "" {
				d.WriteString(": " + c.Detail)
			}
		}
		b.WriteString(fence(d.String(), "diff") + "\n")
	}
	if len(r.Locks) > 0 {
		b.WriteString("\n**Locks held by the migration**\n\n| Table | Lock | Held | Rows | Size | Statement |\n|---|---|--:|--:|--:|---|\n")
		for _, l := range r.Locks {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", cell(l.Table), l.Mode, seconds(l.Seconds), count(l.Rows), bytesText(l.Bytes), cell(clip(l.Statement, 80)))
		}
	}
	if len(r.Waits) > 0 {
		b.WriteString("\n**Waits**\n\n| Waiting | Waited | For | Held by |\n|---|--:|---|---|\n")
		for _, w := range r.Waits {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", mdEscape(w.Waiter.text()), seconds(w.Seconds), mdEscape(w.what()), mdEscape(w.Blocker.text()))
		}
	}
	if len(r.Rewrites) > 0 {
		b.WriteString("\n**Rewrites**\n\n| Kind | Name | Before | After |\n|---|---|--:|--:|\n")
		for _, w := range r.Rewrites {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", w.Kind, cell(w.name()), bytesText(w.BytesBefore), bytesText(w.BytesAfter))
		}
	}
	if len(r.Rows) > 0 {
		b.WriteString("\n**Rows written**\n\n| Table | Inserted | Updated | Deleted |\n|---|--:|--:|--:|\n")
		for _, d := range r.Rows {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", cell(d.Table), count(d.Inserted), count(d.Updated), count(d.Deleted))
		}
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n")
		for _, n := range r.Notes {
			b.WriteString("- " + mdEscape(n) + "\n")
		}
	}
	b.WriteString("\n</details>\n")
	return b.String()
}

// MarkdownWithin is Markdown when it fits in n bytes (a GitHub comment or a
// check run's summary holds 65,536 characters), else the summary, the error
// and as many warnings as fit, then more: where the whole report is.
func (r Report) MarkdownWithin(n int, more string) string {
	full := r.Markdown()
	if len(full) <= n {
		return full
	}
	var b strings.Builder
	fmt.Fprintf(&b, "### Migration rehearsal: %s\n\n%s\n", r.title(), r.summary(true))
	if r.Failed != "" {
		b.WriteString("\n**The migration failed:**\n\n" + fence(clip(strings.TrimSpace(r.Failed), 2000), "") + "\n")
	}
	tail := "\nThe whole report is too long to show here: " + more + "\n"
	if len(r.Warnings) > 0 {
		b.WriteString("\n")
	}
	for i, w := range r.Warnings {
		line := fmt.Sprintf("- :warning: **%s** on %s — %s\n", w.Code, code(w.Table), mdEscape(clip(w.Message, 400)))
		if w.Statement != "" {
			line += fmt.Sprintf("  %s\n", code(w.Statement))
		}
		left := fmt.Sprintf("- … and %d more warnings\n", len(r.Warnings)-i)
		if b.Len()+len(line)+len(left)+len(tail) > n {
			b.WriteString(left)
			break
		}
		b.WriteString(line)
	}
	if e := r.earlierMarkdown(); b.Len()+len(e)+len(tail) <= n {
		b.WriteString(e)
	}
	b.WriteString(tail)
	return b.String()
}

// earlierMarkdown lists the earlier migrations' warnings, one line each.
func (r Report) earlierMarkdown() string {
	if len(r.Earlier) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\nStill on this database from earlier migrations of the pull request:\n\n")
	for _, e := range r.Earlier {
		fmt.Fprintf(&b, "- :warning: **%s** on %s (commit %s)\n", e.Code, code(e.Table), code(shortCommit(e.Commit)))
	}
	return b.String()
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

// title is the heading's verdict: "no warnings", "failed, 2 warnings",
// "1 warning, 2 earlier".
func (r Report) title() string {
	title := "no warnings"
	if n := len(r.Warnings); n > 0 {
		title = plural(n, "warning")
	}
	if n := len(r.Earlier); n > 0 {
		title += fmt.Sprintf(", %d earlier", n)
	}
	if r.Failed != "" {
		title = "failed, " + title
	}
	return title
}

// summary is the first line: how long, on what.
func (r Report) summary(md bool) string {
	verb := "ran"
	if r.Failed != "" {
		verb = "failed after"
	}
	s := fmt.Sprintf("Migration %s %s", verb, seconds(r.Seconds))
	if r.Golden.Generation != "" {
		g := r.Golden.Generation
		if md {
			g = code(g)
		}
		s += " on golden generation " + g
		if r.Golden.Bytes > 0 {
			s += " (" + bytesText(r.Golden.Bytes) + ")"
		}
	}
	return s + "."
}

func (r Report) diffSince() string {
	if r.DiffBase == DiffFromGolden {
		return "since the golden generation"
	}
	return "made by the migration"
}

// name is how a change's object reads: "orders.total" for a column,
// "orders_pkey on orders" for an index, constraint or trigger.
func (c Change) name() string {
	switch {
	case c.Table == "":
		return c.Object
	case c.Kind == KindColumn:
		return c.Table + "." + c.Object
	default:
		return c.Object + " on " + c.Table
	}
}

func (w Rewrite) name() string {
	if w.Table != "" {
		return w.Name + " on " + w.Table
	}
	return w.Name
}

func (s Session) text() string {
	who := "pid " + strconv.Itoa(int(s.Pid))
	switch {
	case s.Migration:
		who += " (migration"
	case s.Application != "":
		who += " (" + s.Application
	default:
		who += " ("
	}
	if s.Query != "" {
		if !strings.HasSuffix(who, "(") {
			who += ": "
		}
		who += clip(s.Query, 60)
	}
	who += ")"
	return strings.Replace(who, " ()", "", 1)
}

func (w Wait) what() string {
	switch {
	case w.Table != "":
		return w.Mode + " on " + w.Table
	case w.Lock == "transactionid":
		return "a row it locked"
	default:
		return w.Lock + " lock (" + w.Mode + ")"
	}
}

func actionMark(a Action, changed string) string {
	switch a {
	case Added:
		return "+"
	case Dropped:
		return "-"
	default:
		return changed
	}
}

// seconds formats a duration in seconds: "0.42 s", "12.3 s", "125 s".
func seconds(s float64) string {
	switch {
	case s < 10:
		return strconv.FormatFloat(s, 'f', 2, 64) + " s"
	case s < 100:
		return strconv.FormatFloat(s, 'f', 1, 64) + " s"
	default:
		return strconv.FormatFloat(s, 'f', 0, 64) + " s"
	}
}

// count formats a row count with thousands separators; "?" when unknown.
func count(n int64) string {
	if n < 0 {
		return "?"
	}
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// bytesText formats a size as pg_size_pretty does, in units of 1024.
func bytesText(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " bytes"
	}
	v := float64(n)
	unit := ""
	for _, u := range []string{"kB", "MB", "GB", "TB", "PB"} {
		v /= 1024
		unit = u
		if v < 1024 {
			break
		}
	}
	if v < 10 {
		return strings.TrimSuffix(strconv.FormatFloat(v, 'f', 1, 64), ".0") + " " + unit
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + " " + unit
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return strings.TrimSpace(string(r[:n-1])) + "…"
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}

// wrap breaks text into lines of at most width characters at spaces.
func wrap(s string, width int) string {
	var b strings.Builder
	n := 0
	for i, word := range strings.Fields(s) {
		if i > 0 {
			if n+1+len(word) > width {
				b.WriteByte('\n')
				n = 0
			} else {
				b.WriteByte(' ')
				n++
			}
		}
		b.WriteString(word)
		n += len(word)
	}
	return b.String()
}

// code is an inline code span that survives backticks in s, on one line:
// a quoted identifier may hold a line break, which would end a table row
// or a list item and let the rest be read as Markdown.
func code(s string) string {
	s = oneLine.Replace(s)
	ticks := "`"
	for strings.Contains(s, ticks) {
		ticks += "`"
	}
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return ticks + s + ticks
}

var oneLine = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ")

// cell is an inline code span inside a table row, where GitHub needs a
// pipe escaped even in code.
func cell(s string) string {
	if s == "" {
		return ""
	}
	return strings.ReplaceAll(code(s), "|", "\\|")
}

// fence is a fenced code block that survives backticks in s.
func fence(s, lang string) string {
	ticks := "```"
	for strings.Contains(s, ticks) {
		ticks += "`"
	}
	return ticks + lang + "\n" + s + "\n" + ticks
}

// mdEscape keeps text from being read as Markdown or HTML, and a table's
// pipes as text.
//
// An @ gets a zero-width space after it, so that a name the pull request
// chose (a table "@acme/security") mentions nobody.
func mdEscape(s string) string {
	s = oneLine.Replace(s)
	r := strings.NewReplacer("@", "@\u200b", "\\", "\\\\", "|", "\\|", "<", "&lt;", "&", "&amp;", "*", "\\*", "_", "\\_", "`", "\\`", "[", "\\[", "]", "\\]")
	return r.Replace(s)
}
