package hotrestart

import (
	"errors"
	"testing"
)

func TestTicketKeysRoundTripAndRejectBadKeys(t *testing.T) {
	keys := [][32]byte{{1, 2, 3}, {4, 5, 6}, {7}}
	got, err := DecodeTicketKeys(TicketKeysMessage(keys))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(keys) || got[0] != keys[0] || got[1] != keys[1] || got[2] != keys[2] {
		t.Fatalf("decoded %v, want %v", got, keys)
	}
	for _, body := range []string{`{"keys":[]}`, `{"keys":["AAEC"]}`, `{"keys":null}`, `not json`} {
		if _, err := DecodeTicketKeys(Message{Type: TypeTicketKeys, Body: []byte(body)}); !errors.Is(err, ErrProtocol) {
			t.Errorf("body %s: err %v, want ErrProtocol", body, err)
		}
	}
}
