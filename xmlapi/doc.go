// Package xmlapi is switchboard's WebEx XML API front end: it accepts the
// teleconference-only ("AUO") requests real WebEx clients post to
// /WBXService/XMLService, turns them into calls on the daemon's socket
// (package client) and answers in the exact shape those clients parse.
//
// Why a separate, thin layer: the daemon speaks a small binary protocol and
// never parses meeting data; everything WebEx-specific (XML dialects,
// accounts, the meeting record, exception IDs) lives here, so the daemon's
// hot path stays free of it and this layer can be replaced or run several
// times over without state: the whole meeting travels to the daemon as the
// reservation's opaque meta blob (record.go) and comes back on LOOKUP, so a
// Get works after this process or the daemon restarts.
//
// # Operations
//
//   - CreateTeleconferenceSession: ALLOCATE → auo:sessionKey.
//   - GetTeleconferenceSession: LOOKUP → the stored meeting and the bridge's
//     toll and toll-free numbers and access codes.
//   - SetTeleconferenceSession: LOOKUP, merge, UPDATE → empty body.
//   - DelSession, and DelMeeting with a meetingKey: LOOKUP (ownership),
//     RELEASE → empty body.
//   - AuthenticateUser: a password sign-in → a sessionTicket (ticket.go)
//     that later requests send instead of the password.
//   - GetAPIVersion: no sign-in, PING → the version; a health check.
//
// Any other operation is a FAILURE 000000, logged with the name it asked
// for. A host may only Get, Set or Delete its own sessions (000001
// otherwise). Exception IDs: errors.go.
//
// # What is accepted (docs/webex-xml.md §2)
//
// Elements are matched by local name, ignoring namespaces and prefixes
// (declared or not) and letter case (`siteId`); the root may be
// serv:message or message; element order is free; unknown elements are
// ignored; the operation comes from bodyContent/@xsi:type in the documented
// "java:…Op" form or as a JAXB QName; booleans are true/false/1/0 in any
// case; ISO-8859-1, Windows-1252 and other declared encodings are read
// (charset.go says how far); the Content-Type is ignored and the body is
// never form-decoded. Malformed, oversized or too deeply nested documents
// get a FAILURE 000000, never a 500.
//
// # Decisions on the unknowns of docs/webex-xml.md §9
//
//   - Exception IDs (§9.1): errors.go; our own IDs are in the 0699xx block
//     (069903 daemon overloaded, 069906 sign-in busy and 069907 sign-in
//     throttled are the retry-later ones, with a Retry-After header).
//   - Required fields (§9.2): confName on Create (and after a Set); an
//     email per attendee; sessionKey on Set, Get and DelSession. Missing
//     duration is 60 minutes, missing timeZoneID the account's zone.
//     Validation failures are 069900 and name the element.
//   - Response samples (§9.3): Create as the seed; Set and DelSession an
//     empty typed bodyContent (auo:setTeleconferenceSessionResponse,
//     ep:delSessionResponse); Get as render.go describes.
//   - QName xsi:type and qualified bodies (§9.4): accepted; names match
//     case-insensitively.
//   - Order, unknown elements, listing (§9.5): order is free, unknown
//     elements are ignored, listing is PUBLIC or PRIVATE only (UNLISTED is
//     refused, as the AUO schema says).
//   - Failover (§9.6): never in the XML (gsbStatus is a different axis);
//     the tier is in the X-Switchboard-Tier response header.
//   - Password criteria (§9.7): sessionPassword at most 16 characters,
//     nothing else (site policies are not modelled).
//   - Nested prefixes (§9.8): com: for common.xsd children (tracking
//     codes, phones), auo: for the rest.
//   - DelMeeting (§9.9): the same delete as DelSession (§3.2).
//   - duration (§9.10): minutes; remind and validateFormat are stored and
//     returned but have no effect.
//   - Enumerations are read case-insensitively and written in the schema's
//     case. startDate is converted to UTC in the IANA zone of its
//     timeZoneID (timezone.go), daylight saving time included; Get gives
//     the wall clock back as the client wrote it.
//   - Set changes only the elements it carries; an attendee list or the
//     repeat element replaces the stored one whole. Two concurrent Sets of
//     one session: the last one wins.
//
// # Security
//
// Accounts come from the config with bcrypt or argon2id password hashes;
// the securityContext rule is (siteName or siteID) and (webExID or email)
// and (password or sessionTicket). A ticket is HMAC-signed with the secret
// of auth.ticket_secret_file and expires TicketTTL (5,400 s) after
// AuthenticateUser (ticket.go). A verified (account, password) pair is remembered as a
// keyed HMAC for auth.cache_ttl so that the slow hash is not paid on every
// request. Logs never contain passwords, tickets, meeting content or
// meta: one line per request with the operation (named as asked,
// supported or not), user, key, tier, exception ID and offending element
// path.
//
// Under attack (auth.go, throttle.go):
//
//   - Slow checks run at most auth.max_concurrent_hashes at a time (half
//     the cores by default), so a flood of sign-ins cannot starve the
//     requests already signed in; a sign-in that finds no slot within
//     auth.hash_wait is answered 069906 (busy, Retry-After: 1) at once,
//     never 000035, which blames the daemon.
//   - Failed sign-ins are counted per account (its webExID and email, in
//     any letter case, are one count; a name of no account counts alone)
//     and per client address; past auth.throttle_free_failures each key is refused for an
//     exponentially growing delay (069907, Retry-After, no hash spent, the
//     answer held up to auth.throttle_hold). An address that signed in to
//     an account lately skips that account's throttle, so an attacker
//     cannot lock a host out. The table is bounded (auth.throttle_entries).
//   - An unknown name is checked against a dummy hash with the parameters
//     of one of the accounts' hashes, picked by a keyed hash of the name:
//     it costs what a known name costs whatever the accounts' costs.
//
// # Observability
//
// One log line per request (above); with WithMetrics, the xmlapi_*
// Prometheus families (metrics.go: requests by operation and result,
// latency, FAILUREs by exception ID, tickets issued) on cmd/xmlapi's
// metrics.addr, and GET HealthPath, 200 while the daemon answers a PING,
// on that listener and the XML port.
//
// # XML fidelity
//
// A CR in a stored value is written as &#13; (a raw CR would reach the
// client as LF, XML's end-of-line normalisation); a document with two
// attributes of the same name is not well-formed and gets 000000. A value
// loses only the spaces, tabs and line ends that indenting a document puts
// around it: a CR sent as &#13; at either end is kept (a literal CR is LF
// once decoded, so a CR in a value was always meant), as is any other
// Unicode space such as U+00A0.
package xmlapi
