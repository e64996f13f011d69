package otlp

// Field numbers of the OTLP trace messages.
const (
	fieldRequestResourceSpans = 1

	fieldRSResource   = 1
	fieldRSScopeSpans = 2
	fieldRSSchemaURL  = 3
	// fieldRSInstrumentationLibrarySpans is the deprecated name of
	// scope_spans (OTLP before 0.19), with the same layout; old SDKs still
	// send it.
	fieldRSInstrumentationLibrarySpans = 1000

	fieldResourceAttributes = 1

	fieldSSScope     = 1
	fieldSSSpans     = 2
	fieldSSSchemaURL = 3

	fieldScopeName       = 1
	fieldScopeVersion    = 2
	fieldScopeAttributes = 3

	fieldSpanTraceID      = 1
	fieldSpanSpanID       = 2
	fieldSpanTraceState   = 3
	fieldSpanParentSpanID = 4
	fieldSpanName         = 5
	fieldSpanKind         = 6
	fieldSpanStart        = 7
	fieldSpanEnd          = 8
	fieldSpanAttributes   = 9
	fieldSpanEvents       = 11
	fieldSpanLinks        = 13
	fieldSpanStatus       = 15
	fieldSpanFlags        = 16

	fieldEventTime       = 1
	fieldEventName       = 2
	fieldEventAttributes = 3

	fieldLinkTraceID    = 1
	fieldLinkSpanID     = 2
	fieldLinkTraceState = 3
	fieldLinkAttributes = 4
	fieldLinkFlags      = 6

	fieldStatusMessage = 2
	fieldStatusCode    = 3

	fieldKVKey   = 1
	fieldKVValue = 2

	fieldAnyString = 1
	fieldAnyBool   = 2
	fieldAnyInt    = 3
	fieldAnyDouble = 4
	fieldAnyArray  = 5
	fieldAnyKVList = 6
	fieldAnyBytes  = 7

	fieldListValues = 1 // ArrayValue.values and KeyValueList.values
)
