package xmlapi

import (
	"fmt"
	"time"
	_ "time/tzdata" // the zones below must load on a host without a zoneinfo database
)

// tzNames maps each WebEx timeZoneID (docs/webex-xml.md §6, table A.1 of
// XML API 5.9) to the IANA time zone of the city its label names, so that
// a startDate is read with the daylight saving rules in force on that
// date. 24 and 27 are deprecated aliases of 23 and 26.
//
// Decision: the city wins over the table's GMT offset where the two have
// since parted (docs/webex-xml.md §6 lists them): 20 Casablanca is on
// GMT+01:00 outside Ramadan since 2018, 42 Colombo on +05:30 since 2006,
// 43 Almaty on +05:00 since 2024. Ids whose label names no city or a
// region get the zone of that region with the table's offset: 0 is
// Etc/GMT+12, 18 (Mid-Atlantic, GMT-02:00) is Atlantic/South_Georgia,
// 1 (Samoa, GMT-11:00) is American Samoa (Samoa itself moved to +13 in
// 2011). The zones come from the host's zoneinfo database, else from
// the copy embedded in the binary (time/tzdata).
var tzNames = [62]string{
	0:  "Etc/GMT+12",                   // Dateline (Eniwetok)
	1:  "Pacific/Pago_Pago",            // Samoa
	2:  "Pacific/Honolulu",             // Hawaii (Honolulu)
	3:  "America/Anchorage",            // Alaska (Anchorage)
	4:  "America/Los_Angeles",          // Pacific (San Jose)
	5:  "America/Phoenix",              // Mountain (Arizona)
	6:  "America/Denver",               // Mountain (Denver)
	7:  "America/Chicago",              // Central (Chicago)
	8:  "America/Mexico_City",          // Mexico (Mexico City, Tegucigalpa)
	9:  "America/Regina",               // Central (Regina)
	10: "America/Bogota",               // S. America Pacific (Bogota)
	11: "America/New_York",             // Eastern (New York)
	12: "America/Indiana/Indianapolis", // Eastern (Indiana)
	13: "America/Halifax",              // Atlantic (Halifax)
	14: "America/Caracas",              // S. America Western (Caracas)
	15: "America/St_Johns",             // Newfoundland
	16: "America/Sao_Paulo",            // S. America Eastern (Brasilia)
	17: "America/Argentina/Buenos_Aires",
	18: "Atlantic/South_Georgia", // Mid-Atlantic
	19: "Atlantic/Azores",        // Azores
	20: "Africa/Casablanca",      // Greenwich (Casablanca)
	21: "Europe/London",          // GMT (London)
	22: "Europe/Amsterdam",       // Europe (Amsterdam)
	23: "Europe/Paris",           // Europe (Paris)
	24: "Europe/Paris",           // deprecated, as 23
	25: "Europe/Berlin",          // Europe (Berlin)
	26: "Europe/Athens",          // Greece (Athens)
	27: "Europe/Athens",          // deprecated, as 26
	28: "Africa/Cairo",           // Egypt (Cairo)
	29: "Africa/Johannesburg",    // South Africa (Pretoria)
	30: "Europe/Helsinki",        // Northern Europe (Helsinki)
	31: "Asia/Jerusalem",         // Israel (Tel Aviv)
	32: "Asia/Baghdad",           // Saudi Arabia (Baghdad)
	33: "Europe/Moscow",          // Russian (Moscow)
	34: "Africa/Nairobi",         // Nairobi
	35: "Asia/Tehran",            // Iran (Tehran)
	36: "Asia/Dubai",             // Arabian (Abu Dhabi, Muscat)
	37: "Asia/Baku",              // Baku
	38: "Asia/Kabul",             // Afghanistan (Kabul)
	39: "Asia/Yekaterinburg",     // West Asia (Ekaterinburg)
	40: "Asia/Karachi",           // West Asia (Islamabad)
	41: "Asia/Kolkata",           // India (Bombay)
	42: "Asia/Colombo",           // Columbo
	43: "Asia/Almaty",            // Central Asia (Almaty)
	44: "Asia/Bangkok",           // Bangkok
	45: "Asia/Shanghai",          // China (Beijing)
	46: "Australia/Perth",        // Australia Western (Perth)
	47: "Asia/Singapore",         // Singapore
	48: "Asia/Taipei",            // Taipei (Hong Kong)
	49: "Asia/Tokyo",             // Tokyo
	50: "Asia/Seoul",             // Korea (Seoul)
	51: "Asia/Yakutsk",           // Yakutsk
	52: "Australia/Adelaide",     // Australia Central (Adelaide)
	53: "Australia/Darwin",       // Australia Central (Darwin)
	54: "Australia/Brisbane",     // Australia Eastern (Brisbane)
	55: "Australia/Sydney",       // Australia Eastern (Sydney)
	56: "Pacific/Guam",           // West Pacific (Guam)
	57: "Australia/Hobart",       // Tasmania (Hobart)
	58: "Asia/Vladivostok",       // Vladivostok
	59: "Pacific/Guadalcanal",    // Central Pacific (Solomon Is)
	60: "Pacific/Auckland",       // New Zealand (Wellington)
	61: "Pacific/Fiji",           // Fiji
}

// tzLocs holds the loaded zones, by timeZoneID.
var tzLocs = func() [len(tzNames)]*time.Location {
	var out [len(tzNames)]*time.Location
	for id, name := range tzNames {
		l, err := time.LoadLocation(name)
		if err != nil { // impossible with time/tzdata embedded
			panic(fmt.Sprintf("xmlapi: time zone %d (%s): %v", id, name, err))
		}
		out[id] = l
	}
	return out
}()

// MaxTimeZoneID is the largest WebEx timeZoneID.
const MaxTimeZoneID = len(tzNames) - 1

// DefaultTimeZoneID is the time zone of an account that names none: 4,
// GMT-08:00 Pacific (San Jose), the WebEx default.
const DefaultTimeZoneID = 4

// TimeZoneName returns the IANA name of a WebEx timeZoneID, or "" when
// id is not in 0..MaxTimeZoneID.
func TimeZoneName(id int) string {
	if id < 0 || id > MaxTimeZoneID {
		return ""
	}
	return tzNames[id]
}

// utcFromLocal converts a wall-clock time in zone tz, given as Unix seconds
// of the same wall clock read as UTC, to Unix seconds UTC, with the
// daylight saving rules of tz in force on that date.
//
// Decision, for the two hours a year whose wall clock is not one instant:
// a time that does not exist (skipped when clocks go forward, e.g. 02:30
// on the spring change in San Jose) is read with the offset in force
// before the change, so it lands as far after the change as it was after
// the skipped hour's start (03:30 daylight time); a time that exists twice
// (clocks go back) is its first occurrence, still on daylight time.
func utcFromLocal(local int64, tz int) int64 {
	loc := tzLocs[tz]
	offAt := func(u int64) int64 {
		_, off := time.Unix(u, 0).In(loc).Zone()
		return int64(off)
	}
	// The offsets in force two days either side: zones change their
	// offset at most a few times a year, so these are the candidates.
	before, after := offAt(local-2*86400), offAt(local+2*86400)
	u1, u2 := local-before, local-after
	ok1, ok2 := offAt(u1) == before, offAt(u2) == after
	switch {
	case ok1 && ok2:
		return min(u1, u2) // the first occurrence (equal when no change)
	case ok1:
		return u1
	case ok2:
		return u2
	}
	return u1 // in the skipped hour: the offset before the change
}
