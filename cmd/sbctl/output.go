package main

import (
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
