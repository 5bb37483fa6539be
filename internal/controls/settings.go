package controls

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/attest/attest/internal/store"
)

// Settings are a tenant's compliance settings: the categories its SOC 2
// covers, and where alerts about failing controls are sent.
type Settings struct {
	// Categories in scope, Security always among them, in the order of
	// Categories.
	Categories []Category
	// WebhookURL, when set, receives each alert as a signed JSON POST.
	WebhookURL string
	// WebhookSecret keys the HMAC-SHA256 signature of each delivery. It is
	// never answered by the API.
	WebhookSecret string
	UpdatedAt     time.Time
}

// DefaultSettings cover Security alone and send no webhook.
func DefaultSettings() *Settings { return &Settings{Categories: []Category{Security}} }

// ParseCategories reads categories by name, adds Security, drops
// duplicates and puts them in order. An unknown name is an error.
func ParseCategories(names []string) ([]Category, error) {
	set := map[Category]bool{Security: true}
	for _, n := range names {
		c := Category(strings.TrimSpace(n))
		if !slices.Contains(Categories, c) {
			return nil, fmt.Errorf("controls: no category %q (want one of security, availability, confidentiality, "+
				"processing_integrity, privacy)", n)
		}
		set[c] = true
	}
	var out []Category
	for _, c := range Categories {
		if set[c] {
			out = append(out, c)
		}
	}
	return out, nil
}

// LoadSettings reads tenant tenantID's settings; a tenant that never set
// them has the defaults.
func LoadSettings(ctx context.Context, db *store.DB, q store.Querier, tenantID int64) (*Settings, error) {
	var cats, url, secret string
	var at int64
	err := q.QueryRowContext(ctx, db.Rebind(`SELECT categories, webhook_url, webhook_secret, updated_at
		FROM compliance_settings WHERE tenant_id = ?`), tenantID).Scan(&cats, &url, &secret, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return DefaultSettings(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("controls: read settings: %w", err)
	}
	cs, err := ParseCategories(strings.Split(cats, ","))
	if err != nil {
		return nil, err
	}
	return &Settings{Categories: cs, WebhookURL: url, WebhookSecret: secret, UpdatedAt: time.UnixMicro(at).UTC()}, nil
}

// SaveSettings writes tenant tenantID's settings in tx.
func SaveSettings(ctx context.Context, db *store.DB, tx *sql.Tx, tenantID int64, s *Settings, now time.Time) error {
	names := make([]string, len(s.Categories))
	for i, c := range s.Categories {
		names[i] = string(c)
	}
	at := now.UTC().UnixMicro()
	cats := strings.Join(names, ",")
	res, err := tx.ExecContext(ctx, db.Rebind(`UPDATE compliance_settings SET categories = ?, webhook_url = ?,
		webhook_secret = ?, updated_at = ? WHERE tenant_id = ?`), cats, s.WebhookURL, s.WebhookSecret, at, tenantID)
	if err != nil {
		return fmt.Errorf("controls: save settings: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, db.Rebind(`INSERT INTO compliance_settings (tenant_id, categories, webhook_url,
		webhook_secret, updated_at) VALUES (?, ?, ?, ?, ?)`), tenantID, cats, s.WebhookURL, s.WebhookSecret, at); err != nil {
		return fmt.Errorf("controls: save settings: %w", err)
	}
	return nil
}
