package httpapi

import "testing"

func TestDuplicateKey(t *testing.T) {
	for body, want := range map[string]string{
		`{"text":"a","voice":"b"}`:                                              "",
		`{"text":"a","text":"b"}`:                                               "text",
		`{"text":"a","TEXT":"b"}`:                                               "TEXT",
		`{"items":[{"key":"a","text":"x"},{"key":"b","text":"y"}]}`:             "",
		`{"items":[{"key":"a","text":"x","text":"y"}]}`:                         "text",
		`{"a":{"b":1},"b":2}`:                                                   "",
		`{"a":{"b":1,"c":[1,{"b":2}],"b":3}}`:                                   "b",
		`{"a":[{"x":1}],"a":2}`:                                                 "a",
		`{"a":"b","b":"a"}`:                                                     "",
		`[{"a":1},{"a":1}]`:                                                     "",
		`{"a":{},"b":[],"c":{"a":{}},"d":null}`:                                 "",
		`{"outer":{"inner":{"k":1}},"outer2":{"inner":{"k":1,"k":2}}}`:          "k",
		`{"text":"{\"text\":1,\"text\":2}"}`:                                    "",
		`{"a":[[{"z":1}],[{"z":1}]],"z":{"z":{"z":1}}}`:                         "",
		`{"a":1,"b":{"c":{"d":[{"e":1,"f":[{"g":1,"g":2}]}]}}}`:                 "g",
		`{"text":"Hello","speed":1.5,"format":"wav","queue":"batch","speed":2}`: "speed",
	} {
		if got := duplicateKey([]byte(body)); got != want {
			t.Errorf("duplicateKey(%s) = %q, want %q", body, got, want)
		}
	}
}
