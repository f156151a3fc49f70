package binding_test

import (
	"fmt"

	"github.com/kjobs/kjobs/internal/binding"
)

// Decode validates a binding's filters with Knative's own code, and refuses
// what Knative would accept but turn into a binding of every event.
func ExampleDecode() {
	for _, body := range []string{
		`{"name":"uploads","filters":[{"prefix":{"type":"com.amazonaws.s3."}}],"function":"echo"}`,
		`{"name":"uploads","filter":{"Type":"com.amazonaws.s3.object-created"},"function":"echo"}`,
		`{"name":"uploads","filters":[{}],"function":"echo"}`,
	} {
		b, err := binding.Decode([]byte(body))
		if err != nil {
			fmt.Println("refused:", err)
			continue
		}
		fmt.Printf("%s runs %s on %v; Trigger path %s\n", b.Name, b.Function, b.Filters[0].Prefix, binding.SubscriberPath(b.Name))
	}
	// Output:
	// uploads runs echo on map[type:com.amazonaws.s3.]; Trigger path /bindings/uploads
	// refused: filter[Type]: invalid key name "Type": filter[Type]; Attribute name must start with a letter and can only contain lowercase alphanumeric
	// refused: filters[0]: a filter needs one dialect: exact, prefix, suffix, all, any, not or cesql
}
