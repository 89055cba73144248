package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/gateway/internal/gwtest"
	"github.com/sluice-proxy/sluice/gateway/internal/testutil"
)

// certsDoc is the admin API's /certs document.
type certsDoc struct {
	Certificates []struct {
		Name   string        `json:"name"`
		CACert []certDetails `json:"ca_cert"`
		Chain  []certDetails `json:"cert_chain"`
	} `json:"certificates"`
}

type certDetails struct {
	Path            string              `json:"path"`
	Serial          string              `json:"serial_number"`
	SANs            []map[string]string `json:"subject_alt_names"`
	DaysUntilExpiry string              `json:"days_until_expiration"`
	ExpirationTime  string              `json:"expiration_time"`
}

func getCerts(t *testing.T, admin string) certsDoc {
	t.Helper()
	resp, err := (&http.Client{Timeout: ioTimeout}).Get("http://" + admin + "/certs")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc certsDoc
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatalf("admin /certs: %v", err)
	}
	return doc
}

// TestAdminCertsShowsEveryCertificateAndTheFirstExpiry checks Envoy's
// /certs and server.days_until_first_cert_expiring: a listener's
// certificate valid for 30 more days is listed with its names and days
// left, and the gauge says 30; after a reload that adds a TLS cluster whose
// CA expires within a day, /certs lists the cluster's CA too and the gauge
// follows the new config to 0.
func TestAdminCertsShowsEveryCertificateAndTheFirstExpiry(t *testing.T) {
	ca := testutil.NewCA(t) // expires within 24 hours
	cert, key, _ := ca.LeafFor(t, 30*24*time.Hour+time.Hour, "edge.test", "127.0.0.1")
	up := testutil.Upstream(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	listenerOnly := tlsListenerConfig(fmt.Sprintf("  [[listener.filter_chain.tls.certificate]]\n  cert_file = %q\n  key_file = %q\n", cert, key),
		cluster("up", up.Addr)) + "\n[admin]\naddress = \"127.0.0.1:0\"\n"
	p := gwtest.Start(t, listenerOnly)
	admin, _ := p.WaitLog(t, "admin API", nil, ioTimeout)["address"].(string)

	doc := getCerts(t, admin)
	if len(doc.Certificates) != 1 || doc.Certificates[0].Name != "listener https chain tls" || len(doc.Certificates[0].Chain) != 1 {
		t.Fatalf("/certs with one TLS listener: %+v", doc)
	}
	leaf := doc.Certificates[0].Chain[0]
	if leaf.Path != cert || leaf.DaysUntilExpiry != "30" || leaf.Serial == "" || leaf.ExpirationTime == "" ||
		len(leaf.SANs) != 2 || leaf.SANs[0]["dns"] != "edge.test" || leaf.SANs[1]["ip_address"] != "127.0.0.1" {
		t.Errorf("the listener's certificate: %+v", leaf)
	}
	if got := adminCounters(t, admin)["server.days_until_first_cert_expiring"]; got != 30 {
		t.Errorf("server.days_until_first_cert_expiring = %v, want 30", got)
	}

	withCluster := listenerOnly + fmt.Sprintf("\n[[cluster]]\nname = \"secure\"\nendpoints = [%q]\n[cluster.tls]\nca_file = %q\n", up.Addr, ca.File)
	if err := os.WriteFile(p.ConfigPath, []byte(withCluster), 0o600); err != nil {
		t.Fatal(err)
	}
	reloadOK(t, p, "reload adding a TLS cluster")
	doc = getCerts(t, admin)
	if len(doc.Certificates) != 2 || doc.Certificates[1].Name != "cluster secure" || len(doc.Certificates[1].CACert) != 1 ||
		doc.Certificates[1].CACert[0].Path != ca.File || doc.Certificates[1].CACert[0].DaysUntilExpiry != "0" {
		t.Fatalf("/certs after adding a TLS cluster: %+v", doc)
	}
	if got := adminCounters(t, admin)["server.days_until_first_cert_expiring"]; got != 0 {
		t.Errorf("server.days_until_first_cert_expiring = %v with a CA expiring within a day, want 0", got)
	}
}
