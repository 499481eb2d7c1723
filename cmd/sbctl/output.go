package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"switchboard/wire"
)

// The JSON shapes below are sbctl's output contract. Session keys are
// strings; field names follow the WebEx XML API where one exists
// (timeZoneID, entryExitTone, repeatType, dayInWeek…).

type pingResult struct {
	OK    bool  `json:"ok"`
	RTTus int64 `json:"rtt_us"`

	socket string
	rtt    time.Duration
}

func (r *pingResult) writeText(w io.Writer) error {
	_, err := fmt.Fprintf(w, "pong from %s in %v\n", r.socket, r.rtt.Round(time.Microsecond))
	return err
}

type releaseResult struct {
	Released string `json:"released"`
}

func (r *releaseResult) writeText(w io.Writer) error {
	_, err := fmt.Fprintf(w, "released %s\n", r.Released)
	return err
}

type bridgeJSON struct {
	ID           string `json:"id"`
	Toll         string `json:"toll"`
	TollFree     string `json:"tollFree"`
	HostCode     string `json:"hostCode"`
	AttendeeCode string `json:"attendeeCode"`
}

type allocateResult struct {
	SessionKey string     `json:"sessionKey"`
	Tier       string     `json:"tier"`
	Replayed   bool       `json:"replayed"`
	Bridge     bridgeJSON `json:"bridge"`
}

func (r *allocateResult) writeText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "session key\t%s\n", r.SessionKey)
	fmt.Fprintf(tw, "tier\t%s\n", r.Tier)
	fmt.Fprintf(tw, "replayed\t%s\n", yesNo(r.Replayed))
	writeBridge(tw, &r.Bridge)
	return tw.Flush()
}

type repeatJSON struct {
	RepeatType     string   `json:"repeatType"` // NO_REPEAT, DAILY, WEEKLY, MONTHLY
	Interval       uint16   `json:"interval,omitempty"`
	ExpirationDate string   `json:"expirationDate,omitempty"` // RFC 3339, UTC
	DayInWeek      []string `json:"dayInWeek,omitempty"`      // SUNDAY…SATURDAY
	DayInMonth     uint8    `json:"dayInMonth,omitempty"`
	WeekInMonth    uint8    `json:"weekInMonth,omitempty"`
}

// reservationResult is a reservation as LOOKUP and UPDATE return it. The
// meta blob is the front end's meeting record: only its length is shown.
type reservationResult struct {
	SessionKey       string     `json:"sessionKey"`
	Tier             string     `json:"tier"`
	Bridge           bridgeJSON `json:"bridge"`
	Name             string     `json:"name"`
	StartDate        string     `json:"startDate,omitempty"` // RFC 3339, UTC; absent when unset
	TimeZoneID       int        `json:"timeZoneID"`          // -1 when unset
	Duration         uint32     `json:"duration"`            // minutes
	EntryExitTone    string     `json:"entryExitTone,omitempty"`
	Repeat           repeatJSON `json:"repeat"`
	FullAttendees    uint32     `json:"fullAttendees"`
	LimitedAttendees uint32     `json:"limitedAttendees"`
	MetaBytes        int        `json:"metaBytes"`
}

func (r *reservationResult) writeText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "session key\t%s\n", r.SessionKey)
	fmt.Fprintf(tw, "tier\t%s\n", r.Tier)
	writeBridge(tw, &r.Bridge)
	fmt.Fprintf(tw, "name\t%s\n", r.Name)
	fmt.Fprintf(tw, "start\t%s\n", orUnset(r.StartDate))
	tz := "unset"
	if r.TimeZoneID >= 0 {
		tz = strconv.Itoa(r.TimeZoneID)
	}
	fmt.Fprintf(tw, "time zone id\t%s\n", tz)
	fmt.Fprintf(tw, "duration\t%d min\n", r.Duration)
	fmt.Fprintf(tw, "entry/exit tone\t%s\n", orUnset(r.EntryExitTone))
	fmt.Fprintf(tw, "repeat\t%s\n", r.Repeat.text())
	fmt.Fprintf(tw, "attendees\t%d full, %d limited\n", r.FullAttendees, r.LimitedAttendees)
	fmt.Fprintf(tw, "meta\t%d bytes\n", r.MetaBytes)
	return tw.Flush()
}

func (r *repeatJSON) text() string {
	if r.RepeatType == "NO_REPEAT" {
		return "none"
	}
	parts := []string{r.RepeatType}
	if r.Interval > 0 {
		parts = append(parts, "every "+strconv.Itoa(int(r.Interval)))
	}
	if len(r.DayInWeek) > 0 {
		parts = append(parts, "on "+strings.Join(r.DayInWeek, ","))
	}
	if r.DayInMonth > 0 {
		parts = append(parts, "day "+strconv.Itoa(int(r.DayInMonth)))
	}
	if r.WeekInMonth > 0 {
		parts = append(parts, "week "+strconv.Itoa(int(r.WeekInMonth)))
	}
	if r.ExpirationDate != "" {
		parts = append(parts, "until "+r.ExpirationDate)
	}
	return strings.Join(parts, " ")
}

func writeBridge(w io.Writer, b *bridgeJSON) {
	fmt.Fprintf(w, "bridge id\t%s\n", b.ID)
	fmt.Fprintf(w, "toll\t%s\n", b.Toll)
	fmt.Fprintf(w, "toll-free\t%s\n", b.TollFree)
	fmt.Fprintf(w, "host code\t%s\n", b.HostCode)
	fmt.Fprintf(w, "attendee code\t%s\n", b.AttendeeCode)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orUnset(s string) string {
	if s == "" {
		return "unset"
	}
	return s
}

func keyString(k uint64) string { return strconv.FormatUint(k, 10) }

// unixDate renders Unix seconds as RFC 3339 in UTC; 0 (unset) as "".
func unixDate(s int64) string {
	if s == 0 {
		return ""
	}
	return time.Unix(s, 0).UTC().Format(time.RFC3339)
}

func toneName(t wire.Tone) string {
	switch t {
	case wire.ToneUnset:
		return ""
	case wire.ToneBeep:
		return "BEEP"
	case wire.ToneAnnounceName:
		return "ANNOUNCENAME"
	case wire.ToneNoTone:
		return "NOTONE"
	}
	return "TONE_" + strconv.Itoa(int(t))
}

var weekdays = [7]string{"SUNDAY", "MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY"}

func repeatOf(r wire.Recurrence) repeatJSON {
	j := repeatJSON{
		Interval:       r.Interval,
		ExpirationDate: unixDate(r.Until),
		DayInMonth:     r.DayOfMonth,
		WeekInMonth:    r.WeekOfMonth,
	}
	switch r.Kind {
	case wire.RepeatNone:
		j.RepeatType = "NO_REPEAT"
	case wire.RepeatDaily:
		j.RepeatType = "DAILY"
	case wire.RepeatWeekly:
		j.RepeatType = "WEEKLY"
	case wire.RepeatMonthly:
		j.RepeatType = "MONTHLY"
	default:
		j.RepeatType = "REPEAT_" + strconv.Itoa(int(r.Kind))
	}
	for i, d := range weekdays {
		if r.Days&(1<<i) != 0 {
			j.DayInWeek = append(j.DayInWeek, d)
		}
	}
	return j
}

// Admin answers. With -json sbctl prints the daemon's own JSON object as it
// came (GET /status is daemon.Status); the types below hold the part the
// readable form shows, with the daemon's field names.

// rawAnswer is the daemon's JSON answer, printed verbatim by -json.
type rawAnswer struct{ raw json.RawMessage }

func (r rawAnswer) MarshalJSON() ([]byte, error) { return r.raw, nil }

type adminServer struct {
	Addr      string `json:"addr"`
	ServerID  string `json:"server_id"`
	Live      int    `json:"live"`
	Dialing   int    `json:"dialing"`
	Draining  int    `json:"draining"`
	InFlight  int    `json:"in_flight"`
	LastError string `json:"last_error"`
}

type adminTier struct {
	Name      string        `json:"name"`
	Breaker   string        `json:"breaker"`
	Override  string        `json:"override"`
	Drained   bool          `json:"drained"`
	Available bool          `json:"available"`
	Live      int           `json:"live"`
	Dialing   int           `json:"dialing"`
	Draining  int           `json:"draining"`
	InFlight  int           `json:"in_flight"`
	Servers   []adminServer `json:"servers"`
}

type adminReload struct {
	At      time.Time `json:"at"`
	Result  string    `json:"result"` // ok, invalid, requires_restart, failed
	Error   string    `json:"error"`
	Version uint64    `json:"config_version"`
}

type adminStatus struct {
	Instance      string       `json:"instance"`
	Socket        string       `json:"socket"`
	ConfigVersion uint64       `json:"config_version"`
	Started       time.Time    `json:"started"`
	UptimeSeconds float64      `json:"uptime_seconds"`
	InFlight      int64        `json:"in_flight"`
	KeysIssued    uint64       `json:"keys_issued"`
	KeysLeft      uint64       `json:"keys_left"`
	Keys          adminKeys    `json:"keys"`
	Orphans       int          `json:"orphans_pending"`
	Stranded      int          `json:"orphans_stranded"`
	LastReload    *adminReload `json:"last_reload"`
	Tiers         []adminTier  `json:"tiers"`
}

type statusResult struct {
	rawAnswer
	st adminStatus
}

// writeText prints a header, then one row per tier in failover order with
// its servers indented below it: a server's counts sit under its tier's,
// followed by its server id and last error.
func (r *statusResult) writeText(w io.Writer) error {
	s := &r.st
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "instance\t%s\n", s.Instance)
	fmt.Fprintf(tw, "socket\t%s\n", s.Socket)
	fmt.Fprintf(tw, "config version\t%d\n", s.ConfigVersion)
	fmt.Fprintf(tw, "uptime\t%v\n", uptime(s.UptimeSeconds))
	fmt.Fprintf(tw, "in flight\t%d\n", s.InFlight)
	fmt.Fprintf(tw, "keys\t%d issued, %d left\n", s.KeysIssued, s.KeysLeft)
	s.Keys.writeText(tw)
	if s.Stranded > 0 {
		fmt.Fprintf(tw, "orphans pending\t%d (%d stranded: their server is in no configured tier)\n", s.Orphans, s.Stranded)
	} else {
		fmt.Fprintf(tw, "orphans pending\t%d\n", s.Orphans)
	}
	fmt.Fprintf(tw, "last reload\t%s\n", reloadText(s.LastReload))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\ntiers, in failover order:\n")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	// IN-FLIGHT is the last cell of the header and tier rows (no trailing
	// blanks) but a column of the server rows, so that what follows it
	// lines up.
	fmt.Fprintf(tw, "TIER\tBREAKER\tOVERRIDE\tDRAINED\tAVAILABLE\tLIVE\tDIALING\tDRAINING\tIN-FLIGHT\n")
	for _, t := range s.Tiers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\n", t.Name, t.Breaker, t.Override,
			yesNo(t.Drained), yesNo(t.Available), t.Live, t.Dialing, t.Draining, t.InFlight)
		for _, sv := range t.Servers {
			id := sv.ServerID
			if id == "" {
				id = "-"
			}
			fmt.Fprintf(tw, "  %s\t\t\t\t\t%d\t%d\t%d\t%d\tserver id %s", sv.Addr, sv.Live, sv.Dialing, sv.Draining, sv.InFlight, id)
			if sv.LastError != "" {
				fmt.Fprintf(tw, ", last error: %s", oneLine(sv.LastError))
			}
			fmt.Fprintln(tw)
		}
	}
	return tw.Flush()
}

// uptime renders seconds as a duration: whole seconds, or milliseconds
// under one second.
func uptime(sec float64) time.Duration {
	d := time.Duration(sec * float64(time.Second))
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Second)
}

func reloadText(o *adminReload) string {
	if o == nil {
		return "none since start"
	}
	s := fmt.Sprintf("%s at %s, config version %d in force", o.Result, o.At.Format(time.RFC3339), o.Version)
	if o.Error != "" {
		s += ": " + oneLine(o.Error)
	}
	return s
}

// oneLine folds a multi-line message (errors.Join) onto one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

type reloadResult struct {
	rawAnswer
	ans struct {
		Version uint64 `json:"config_version"`
	}
}

func (r *reloadResult) writeText(w io.Writer) error {
	_, err := fmt.Fprintf(w, "reloaded: config version %d\n", r.ans.Version)
	return err
}

type drainResult struct {
	rawAnswer
	ans struct {
		Tier    string `json:"tier"`
		Drained bool   `json:"drained"`
	}
}

func (r *drainResult) writeText(w io.Writer) error {
	what := "undrained: takes new allocations"
	if r.ans.Drained {
		what = "drained: takes no new allocations (lookups, updates and releases still reach it)"
	}
	_, err := fmt.Fprintf(w, "tier %s %s\n", r.ans.Tier, what)
	return err
}

type breakerResult struct {
	rawAnswer
	ans struct {
		Tier     string `json:"tier"`
		Override string `json:"override"`
	}
}

func (r *breakerResult) writeText(w io.Writer) error {
	what := map[string]string{
		"open":   "forced open: no attempt goes to the tier",
		"closed": "forced closed: every attempt goes to the tier, failures are not counted",
		"auto":   "auto: the breaker decides from the tier's failures",
	}[r.ans.Override]
	if what == "" {
		what = r.ans.Override
	}
	_, err := fmt.Fprintf(w, "tier %s breaker %s\n", r.ans.Tier, what)
	return err
}

type logLevelResult struct {
	rawAnswer
	ans struct {
		Level string `json:"level"`
	}
	set bool
}

func (r *logLevelResult) writeText(w io.Writer) error {
	if r.set {
		_, err := fmt.Fprintf(w, "log level now %s\n", r.ans.Level)
		return err
	}
	_, err := fmt.Fprintln(w, r.ans.Level)
	return err
}
