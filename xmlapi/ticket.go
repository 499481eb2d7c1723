package xmlapi

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"

	"switchboard/internal/strictyaml"
)

// Session tickets (docs/webex-xml.md §3.1): AuthenticateUser signs in with
// a password and answers a sessionTicket, which later requests send in
// securityContext instead of the password. WebEx documents a lifetime of
// 5,400 s.
//
// A ticket is self-contained, so that any front end holding the same
// secret accepts it and none keeps state: the unpadded base64url encoding
// (RFC 4648 §5) of
//
//	version 0x01 | issued (Unix s, int64 BE) | expires (Unix s, int64 BE) | lower-case webExID | tag (32 bytes)
//
// where tag is HMAC-SHA256, under the secret of auth.ticket_secret_file,
// of everything before it followed by the account's site and password
// hash. A ticket is therefore valid for one account only, until it
// expires, and no longer once the account's password_hash changes or the
// account is removed. Tags are compared in constant time. Tickets are
// never logged, and never quoted in a reason.

// TicketTTL is how long a sessionTicket is accepted after AuthenticateUser
// issued it (the 5,400 s WebEx documents).
const TicketTTL = 5400 * time.Second

const (
	ticketVersion = 1
	ticketHead    = 1 + 8 + 8
	ticketTagLen  = sha256.Size
	// maxTicketLen bounds a ticket's text before it is decoded: a 64-byte
	// webExID gives 162 characters.
	maxTicketLen = 256
	// minTicketSecret is the shortest secret accepted, in bytes.
	minTicketSecret = 32
)

// ticketer issues and checks session tickets. It is safe for concurrent
// use (its fields never change).
type ticketer struct {
	key []byte
}

func (t *ticketer) tag(body []byte, acc *account) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte("switchboard xmlapi session ticket\x00"))
	m.Write(body)
	m.Write([]byte{0})
	m.Write([]byte(acc.siteKey()))
	m.Write([]byte{0})
	m.Write([]byte(acc.hashText))
	return m.Sum(nil)
}

// issue returns a ticket for acc, valid from now for TicketTTL.
func (t *ticketer) issue(acc *account, now time.Time) string {
	id := strings.ToLower(acc.webExID)
	b := make([]byte, ticketHead, ticketHead+len(id)+ticketTagLen)
	b[0] = ticketVersion
	binary.BigEndian.PutUint64(b[1:], uint64(now.Unix()))
	binary.BigEndian.PutUint64(b[9:], uint64(now.Add(TicketTTL).Unix()))
	b = append(b, id...)
	b = append(b, t.tag(b, acc)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// check reports whether s is a ticket this front end issued for acc that
// has not expired at now. acc nil (no account matches the securityContext)
// accepts nothing.
func (t *ticketer) check(s string, acc *account, now time.Time) bool {
	if acc == nil || len(s) > maxTicketLen {
		return false
	}
	// Strict: the unused low bits of the last character must be zero, so
	// exactly one string decodes to a ticket (a changed character is never
	// the same ticket).
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) < ticketHead+1+ticketTagLen || b[0] != ticketVersion {
		return false
	}
	body, tag := b[:len(b)-ticketTagLen], b[len(b)-ticketTagLen:]
	if !hmac.Equal(tag, t.tag(body, acc)) {
		return false
	}
	// Only now is the content ours to trust.
	expires := int64(binary.BigEndian.Uint64(body[9:]))
	if string(body[ticketHead:]) != strings.ToLower(acc.webExID) {
		return false // issued to another account that shares site and hash
	}
	return now.Unix() < expires
}

// ticketSecretField names auth.ticket_secret_file in configuration errors.
const ticketSecretField = "auth.ticket_secret_file"

// ticketKey reads auth.ticket_secret_file: hex, at least 32 bytes, in a
// file of mode 0600 or stricter. No file: a random key, so tickets last
// until the process stops and only the front end that issued one accepts
// it. A bad file is an ErrConfig wrapping strictyaml.Errors that names the
// field, so that ParseConfig's report can give its line.
func ticketKey(path string) ([]byte, error) {
	if path == "" {
		k := make([]byte, minTicketSecret)
		if _, err := rand.Read(k); err != nil {
			return nil, err
		}
		return k, nil
	}
	k, msg := readTicketKey(path)
	if msg != "" {
		return nil, fmt.Errorf("%w: %w", ErrConfig, strictyaml.Errors{{Field: ticketSecretField, Msg: msg}})
	}
	return k, nil
}

// readTicketKey reads the key in path, or says what is wrong with the file.
func readTicketKey(path string) (key []byte, problem string) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err.Error()
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Sprintf("%s: mode %04o, must be 0600 or stricter (chmod 600 %s)", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err.Error()
	}
	k, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) < minTicketSecret {
		// Never quote the content: it is a secret, perhaps a mistyped one.
		return nil, fmt.Sprintf("%s: want at least %d hex digits (%d bytes), e.g. from openssl rand -hex 32",
			path, 2*minTicketSecret, minTicketSecret)
	}
	return k, ""
}

// CheckFiles reads the files the config names (auth.ticket_secret_file)
// as NewHandler will, so that the start reports a bad one as a
// configuration error (wrapping ErrConfig and strictyaml.Errors).
// LoadConfigChecked does the same in the pass that reads the YAML.
func (c *Config) CheckFiles() error {
	_, err := ticketKey(c.Auth.TicketSecretFile)
	return err
}
