// Command seed writes the demo's golden source as SQL on stdout: the schema
// of the first migration and synthetic customers (names, emails, phone
// numbers, addresses) with their orders. The size knob makes it small for a
// quick demo or large enough to show that clone time does not grow with size.
//
//	go run ./examples/demo/seed -people 2000 > seed.sql
//	go run ./examples/demo/seed -mb 1500 > big.sql
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/prenv/prenv/examples/demo/app/migrations"
)

var (
	first   = []string{"Ada", "Bruno", "Chiara", "Dmitri", "Elif", "Farah", "Goran", "Hana", "Ines", "Jonas", "Kaito", "Lena", "Mateo", "Nia", "Oskar", "Priya", "Quentin", "Rosa", "Sven", "Tariq", "Uma", "Viktor", "Wen", "Ximena", "Yusuf", "Zofia"}
	last    = []string{"Abara", "Berg", "Costa", "Duval", "Eriksen", "Fontaine", "Garcia", "Hoffmann", "Ivanova", "Jansen", "Kowalski", "Lindqvist", "Moreau", "Novak", "Okafor", "Petrov", "Quispe", "Rossi", "Sato", "Tanaka", "Urban", "Vargas", "Weber", "Xu", "Yilmaz", "Zimmer"}
	streets = []string{"Maple Street", "Harbour Road", "Station Lane", "Mill Close", "Church Walk", "Orchard Way", "Bridge Street", "Kings Avenue"}
	cities  = []string{"Northwick", "Eastbury", "Westholm", "Southport", "Lakeside", "Hillcrest", "Rivermouth", "Oakfield"}
	items   = []string{"Espresso beans 1kg", "Ceramic mug", "Pour-over kettle", "Paper filters x100", "Hand grinder", "Milk frother", "Travel tumbler", "Descaler"}
)

func main() {
	people := flag.Int("people", 2000, "number of customers (each has about 5 orders)")
	mb := flag.Int("mb", 0, "approximate size of the data in MB; overrides -people")
	seed := flag.Uint64("seed", 1, "random seed, for reproducible data")
	flag.Parse()
	if *mb > 0 {
		// About 1.1 kB per customer with their orders and indexes, on disk.
		*people = *mb * 1000 * 1000 / 1100
	}
	if *people <= 0 {
		fmt.Fprintln(os.Stderr, "seed: -people must be positive")
		os.Exit(2)
	}
	r := rand.New(rand.NewPCG(*seed, *seed))
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	defer w.Flush()
	schema, err := fs.ReadFile(migrations.FS, "0001_people_and_orders.sql")
	if err != nil {
		panic(err)
	}
	fmt.Fprintln(w, "-- demo golden source: synthetic people and orders, schema at migration 0001")
	w.Write(schema)
	fmt.Fprintln(w, "CREATE TABLE schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());")
	fmt.Fprintln(w, "INSERT INTO schema_migrations (version) VALUES ('0001_people_and_orders');")
	fmt.Fprintln(w, "COPY people (id, full_name, email, phone, street, city, postcode) FROM stdin;")
	for i := 1; i <= *people; i++ {
		f, l := first[r.IntN(len(first))], last[r.IntN(len(last))]
		fmt.Fprintf(w, "%d\t%s %s\t%s.%s%d@example.test\t+44 7%03d %06d\t%d %s\t%s\t%s%d %d%s\n",
			i, f, l, strings.ToLower(f), strings.ToLower(l), i, r.IntN(1000), r.IntN(1000000),
			1+r.IntN(200), streets[r.IntN(len(streets))], cities[r.IntN(len(cities))],
			"NW", 1+r.IntN(20), r.IntN(10), string(rune('A'+r.IntN(26)))+string(rune('A'+r.IntN(26))))
	}
	fmt.Fprintln(w, `\.`)
	fmt.Fprintln(w, "COPY orders (person_id, item, quantity, total_cents, ordered_at) FROM stdin;")
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 1; i <= *people; i++ {
		n := 1 + r.IntN(9)
		for j := 0; j < n; j++ {
			q := 1 + r.IntN(4)
			at := start.Add(time.Duration(r.IntN(365*24*3600)) * time.Second)
			fmt.Fprintf(w, "%d\t%s\t%d\t%d\t%s\n", i, items[r.IntN(len(items))], q, int64(q)*(300+int64(r.IntN(5000))), at.Format(time.RFC3339))
		}
	}
	fmt.Fprintln(w, `\.`)
	fmt.Fprintln(w, "SELECT setval('people_id_seq', (SELECT max(id) FROM people));")
}
