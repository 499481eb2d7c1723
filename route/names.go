package route

// ValidName reports whether s is a well-formed tier name: 1 to 64 of
// a-z, 0-9 and '-'. The daemon's config refuses any other tier name, and
// the orphan journal any record naming one.
func ValidName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}
