// Package scan looks for personal data in a database that is about to become
// a golden source (issue 11, section 3): it samples every column that no
// masking rule covers and no keep entry lists, runs detectors over the
// values (email, phone, credit card, IBAN, US SSN, IP address, person name)
// and over the column names (hints such as customer_email or date_of_birth),
// and reports what it found so that the build can refuse to promote it.
//
// The detectors are tuned against false positives: a golden build that is
// refused for a status column teaches people to pass --allow-pii, which is
// worse than no scanner. Each detector documents what it does not match.
package scan
