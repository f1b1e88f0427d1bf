package scan

import (
	"strings"
	"unicode"
)

// Column-name hints. A column's name is split into words (on _, -, spaces,
// lower-to-upper case changes and letter-digit changes: customerEmail,
// billing_address, ipv4 -> ipv 4), and a hint is one of those words, never a
// substring: "zip" holds no "ip", "namespace" no "name", "emailed" no "email".
//
// The rule (hint):
//   - email, emails, emailaddress -> email
//   - phone, phones, telephone, phonenumber -> phone
//   - ssn, or "social" with "security" -> ssn
//   - dob, birth, birthday, birthdate -> dob or birth
//   - ip, ipv, ipaddr, ipaddress -> ip
//   - address, street, postcode, zip, zipcode, postal -> address: a postcode
//     or zip code with a birth date identifies most people (Sweeney, 2000)
//   - name only for people: with a word naming a person or a part of a
//     person's name (first_name, customer_name, name_last), as one word
//     (firstname, surname, username), or alone in a table whose name is about
//     people (users.name, customers.name); not products.name, file_name,
//     table_name.
//
// A hint does not count when the last word says the column is about the
// thing, not the thing itself (email_id, phone_count, email_status,
// address_type, email_verified), nor on types that cannot hold it: booleans
// never, dates and timestamps only for dob and birth, numbers only for phone
// and ssn, inet only for ip.
//
// A hint alone is a finding when the column holds real-looking values:
// non-blank, not a placeholder (n/a, unknown, redacted, ***), and not one
// value repeated across every sampled row (a default). A column of emails
// needs no hint: the email detector finds it, and the hint is not reported
// on top of a value detector.

var hintWords = map[string]string{
	"email": "email", "emails": "email", "emailaddress": "email",
	"phone": "phone", "phones": "phone", "telephone": "phone", "phonenumber": "phone",
	"ssn": "ssn",
	"dob": "dob", "birth": "birth", "birthday": "birth", "birthdate": "birth",
	"ip": "ip", "ipv": "ip", "ipaddr": "ip", "ipaddress": "ip",
	"address": "address", "addresses": "address", "street": "address", "postcode": "address",
	"zip": "address", "zipcode": "address", "postal": "address",
	"firstname": "name", "lastname": "name", "fullname": "name", "surname": "name", "forename": "name",
	"username": "name", "nickname": "name",
}

// hintOrder decides between two hints in one name: email_address is an
// email, ip_address an ip, not an address.
var hintOrder = []string{"email", "ip", "phone", "ssn", "dob", "birth", "name", "address"}

// personWords next to "name" make it a person's name.
var personWords = map[string]bool{
	"first": true, "last": true, "full": true, "given": true, "family": true, "middle": true, "maiden": true,
	"sur": true, "nick": true, "legal": true, "display": true, "user": true, "customer": true, "contact": true,
	"person": true, "owner": true, "holder": true, "cardholder": true, "recipient": true, "sender": true,
	"billing": true, "shipping": true, "patient": true, "employee": true, "member": true, "student": true,
	"client": true, "guardian": true, "parent": true, "emergency": true, "author": true, "buyer": true,
	"mother": true, "father": true, "spouse": true, "beneficiary": true, "applicant": true, "guest": true,
	"passenger": true, "subscriber": true, "account": true,
}

// personTables are table name words whose bare "name" column names a person.
var personTables = map[string]bool{
	"people": true, "person": true, "persons": true, "user": true, "users": true, "customer": true,
	"customers": true, "employee": true, "employees": true, "contact": true, "contacts": true,
	"member": true, "members": true, "patient": true, "patients": true, "student": true, "students": true,
	"client": true, "clients": true, "author": true, "authors": true, "staff": true, "profile": true,
	"profiles": true, "applicant": true, "applicants": true, "guest": true, "guests": true,
	"passenger": true, "passengers": true, "subscriber": true, "subscribers": true, "account": true, "accounts": true,
}

// aboutWords as the last word make a column describe the thing, not hold it.
var aboutWords = map[string]bool{
	"id": true, "ids": true, "uuid": true, "guid": true, "count": true, "type": true, "kind": true,
	"status": true, "state": true, "verified": true, "confirmed": true, "format": true, "domain": true,
	"provider": true, "country": true, "enabled": true, "valid": true, "length": true, "len": true,
	"at": true, "on": true, "sent": true, "bounced": true, "opt": true, "optin": true, "consent": true,
	"version": true,
	// "hash" is not here: a hash of an email is still personal data, as
	// anyone with a list of addresses can reverse it.
}

// words splits a column or table name into lower-case words.
func words(name string) []string {
	var out []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			out = append(out, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	rs := []rune(name)
	for i, r := range rs {
		switch {
		case !unicode.IsLetter(r) && !unicode.IsDigit(r):
			flush()
			continue
		case i > 0 && unicode.IsUpper(r) && unicode.IsLower(rs[i-1]):
			flush()
		case i > 0 && unicode.IsDigit(r) != unicode.IsDigit(rs[i-1]):
			flush()
		}
		cur = append(cur, r)
	}
	flush()
	return out
}

// columnHint returns the hint a column's name gives ("" for none), given
// its table's name and its type's category (pg_type.typcategory).
func columnHint(table, column string, category byte) string {
	ws := words(column)
	if len(ws) == 0 || aboutWords[ws[len(ws)-1]] && len(ws) > 1 {
		return ""
	}
	found := map[string]bool{}
	for _, w := range ws {
		if h := hintWords[w]; h != "" {
			found[h] = true
		}
	}
	has := func(w string) bool {
		for _, x := range ws {
			if x == w {
				return true
			}
		}
		return false
	}
	if has("social") && has("security") {
		found["ssn"] = true
	}
	if has("name") || has("names") {
		person := false
		for _, w := range ws {
			person = person || personWords[w]
		}
		if len(ws) == 1 {
			for _, w := range words(table) {
				person = person || personTables[w]
			}
		}
		if person {
			found["name"] = true
		}
	}
	for _, h := range hintOrder {
		if found[h] && typeFits(h, category) {
			return h
		}
	}
	return ""
}

// typeFits says whether a column of this type category can hold what the
// hint names.
func typeFits(hint string, category byte) bool {
	switch category {
	case 'B': // boolean
		return false
	case 'D': // date and time
		return hint == "dob" || hint == "birth"
	case 'N': // numeric
		return hint == "phone" || hint == "ssn"
	case 'I': // inet, cidr
		return hint == "ip"
	}
	return true
}

var placeholders = map[string]bool{
	"": true, "-": true, "--": true, "n/a": true, "na": true, "none": true, "null": true, "nil": true,
	"unknown": true, "redacted": true, "[redacted]": true, "masked": true, "tbd": true, "0": true,
}

// realLooking says whether a value is data rather than a placeholder.
func realLooking(v string) bool {
	v = strings.ToLower(strings.TrimSpace(v))
	if placeholders[v] {
		return false
	}
	return strings.Trim(v, "*x#") != ""
}
