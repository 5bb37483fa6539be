package cli

import (
	"strings"
	"testing"
)

func TestConnURL(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"postgres://u:p@db:5432/attest?sslmode=disable", "postgres://u:p@db:5432/attest?sslmode=disable"},
		{"postgresql://db/attest", "postgresql://db/attest"},
		{"host=db port=5432 dbname=attest user=attest password=secret sslmode=disable",
			"postgres://attest:secret@/?dbname=attest&host=db&port=5432&sslmode=disable"},
		{"host = db  password = 'it''s'", ""},
		{`host=db password='it\'s a \\ secret'`, "postgres://:it%27s%20a%20%5C%20secret@/?host=db"},
		{`password=a+b&c=d host=/var/run/postgresql`, "postgres://:a+b&c=d@/?host=%2Fvar%2Frun%2Fpostgresql"},
		{"user=attest options='-c search_path=x'", "postgres://attest@/?options=-c%20search_path%3Dx"},
	}
	for _, tt := range tests {
		got, err := connURL(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("connURL(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("connURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestConnURLRefusesWithoutQuoting(t *testing.T) {
	for _, in := range []string{
		"mysql://root:hunter2@db/attest",
		"hunter2",
		"host=db password='hunter2",
		"host=db Password=hunter2",
		"=hunter2",
		"postgres://root:hunter2@db:port/attest",
		"",
	} {
		_, err := connURL(in)
		if err == nil {
			t.Errorf("connURL(%q) succeeded, want an error", in)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("connURL(%q): error %q quotes the password", in, err)
		}
	}
}

func TestRedactDSN(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"postgres://u:hunter2@db/attest", "postgres://u:REDACTED@db/attest"},
		{"postgres://u@db/attest?password=hunter2", "postgres://u@db/attest?password=REDACTED"},
		{"host=db user=u password=hunter2", "postgres://u:REDACTED@/?host=db"},
		{"host=db password='hunter2", "REDACTED"},
		{"host=db dbname=attest", "postgres:///?dbname=attest&host=db"},
	}
	for _, tt := range tests {
		if got := redactDSN(tt.in); got != tt.want {
			t.Errorf("redactDSN(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
