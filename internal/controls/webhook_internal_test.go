package controls

import (
	"context"
	"errors"
	"net"
	"net/url"
	"testing"
)

// TestWebhookAddresses checks where the default client may dial: public
// addresses always, private ones only for the operator's webhook, and
// never loopback, link-local (cloud metadata) or unspecified ones.
func TestWebhookAddresses(t *testing.T) {
	operator := context.WithValue(context.Background(), privateOK{}, true)
	customer := context.Background()
	for _, tc := range []struct {
		addr               string
		operator, customer error
	}{
		{"93.184.215.14:443", nil, nil},
		{"[2606:4700::1111]:443", nil, nil},
		{"10.1.2.3:443", nil, errPrivateAddress},
		{"192.168.0.10:443", nil, errPrivateAddress},
		{"100.64.0.1:443", nil, errPrivateAddress},
		{"[fd00::1]:443", nil, errPrivateAddress},
		{"127.0.0.1:443", errLocalAddress, errLocalAddress},
		{"[::ffff:127.0.0.1]:443", errLocalAddress, errLocalAddress},
		{"[::1]:443", errLocalAddress, errLocalAddress},
		{"169.254.169.254:80", errLocalAddress, errLocalAddress},
		{"0.0.0.0:443", errLocalAddress, errLocalAddress},
		{"not-an-address", errLocalAddress, errLocalAddress},
		{"[64:ff9b::7f00:1]:443", errLocalAddress, errLocalAddress},
		{"[2002:7f00:1::]:443", errLocalAddress, errLocalAddress},
		{"[::127.0.0.1]:443", errLocalAddress, errLocalAddress},
		{"[64:ff9b::a00:5]:443", nil, errPrivateAddress},
		{"[fec0::1]:443", nil, errPrivateAddress},
		{"0.1.2.3:443", errLocalAddress, errLocalAddress},
	} {
		if err := refuseLocal(operator, "tcp", tc.addr, nil); !errors.Is(err, tc.operator) {
			t.Errorf("operator's webhook dialling %s: %v, want %v", tc.addr, err, tc.operator)
		}
		if err := refuseLocal(customer, "tcp", tc.addr, nil); !errors.Is(err, tc.customer) {
			t.Errorf("customer's webhook dialling %s: %v, want %v", tc.addr, err, tc.customer)
		}
	}
}

// TestDescribeSaysOnlyTheKind checks that a failed delivery is described
// without the address or what the network answered.
func TestDescribeSaysOnlyTheKind(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&url.Error{Op: "Post", URL: "https://10.0.0.5:22/x?token=s3cret", Err: &net.DNSError{Err: "no such host",
			Name: "hooks.internal", Server: "10.255.255.53:53"}}, "the host name did not resolve"},
		{&url.Error{Op: "Post", URL: "https://10.0.0.5:22/", Err: &net.OpError{Op: "dial", Net: "tcp",
			Err: errors.New("connect: connection refused")}}, "could not connect"},
		{&url.Error{Op: "Post", URL: "https://127.0.0.1/", Err: &net.OpError{Op: "dial", Err: errLocalAddress}},
			errLocalAddress.Error()},
	} {
		if got := describe(tc.err); got != tc.want {
			t.Errorf("describe(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
