/* The OTLP JSON text of spans, read from a ScopeSpans' protobuf bytes: the work of
 * otel_bridge.otlp_json._span_from_wire, in C.
 *
 * spans_json(data) takes the bytes of one ScopeSpans message (as upb's SerializeToString writes
 * them) and returns a list with one item per span, in order: the span's JSON text, or None when
 * the span holds something this walk does not write (events, links, a nested or bytes attribute
 * value, a field it does not know, text that is not UTF-8). The caller writes those spans from
 * the message instead. It returns None when the ScopeSpans itself holds something unexpected.
 *
 * The text is byte for byte what the Python walk writes; the tests run both on the same input.
 * Every read is checked against the end of its field: the bytes come from a network request
 * (re-serialized by upb, but nothing here relies on that), so anything malformed gives None,
 * never a read past the buffer.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* --- an output buffer ------------------------------------------------------------------------ */

typedef struct {
    char *data;
    Py_ssize_t size;
    Py_ssize_t capacity;
} Out;

static int out_reserve(Out *out, Py_ssize_t more) {
    if (more > PY_SSIZE_T_MAX - out->size) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t need = out->size + more;
    if (need <= out->capacity) {
        return 0;
    }
    Py_ssize_t capacity = out->capacity ? out->capacity : 1024;
    while (capacity < need) {
        if (capacity > PY_SSIZE_T_MAX / 2) {
            capacity = need;
            break;
        }
        capacity *= 2;
    }
    char *data = PyMem_Realloc(out->data, (size_t)capacity);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    out->data = data;
    out->capacity = capacity;
    return 0;
}

static int out_write(Out *out, const char *text, Py_ssize_t size) {
    if (out_reserve(out, size) < 0) {
        return -1;
    }
    memcpy(out->data + out->size, text, (size_t)size);
    out->size += size;
    return 0;
}

#define OUT_LITERAL(out, text) out_write((out), (text), (Py_ssize_t)(sizeof(text) - 1))

static const char HEX[] = "0123456789abcdef";

static int out_hex(Out *out, const uint8_t *bytes, Py_ssize_t size) {
    if (size > PY_SSIZE_T_MAX / 2 || out_reserve(out, size * 2) < 0) {
        if (!PyErr_Occurred()) {
            PyErr_NoMemory();
        }
        return -1;
    }
    char *to = out->data + out->size;
    for (Py_ssize_t i = 0; i < size; i++) {
        to[2 * i] = HEX[bytes[i] >> 4];
        to[2 * i + 1] = HEX[bytes[i] & 15];
    }
    out->size += size * 2;
    return 0;
}

static int out_unsigned(Out *out, uint64_t value) {
    char digits[20];
    int count = 0;
    do {
        digits[19 - count] = (char)('0' + value % 10);
        value /= 10;
        count++;
    } while (value);
    return out_write(out, digits + 20 - count, count);
}

static int out_signed(Out *out, int64_t value) {
    if (value < 0) {
        if (OUT_LITERAL(out, "-") < 0) {
            return -1;
        }
        return out_unsigned(out, (uint64_t)0 - (uint64_t)value);
    }
    return out_unsigned(out, (uint64_t)value);
}

/* Strings longer than this have their escapes counted before they are written. */
#define QUOTED_COUNTED_FROM 4096

/* Text as json.encoder.encode_basestring writes it (ensure_ascii=False): in quotes, with '"',
 * '\\' and the control characters escaped, everything else as it is. `text` is valid UTF-8. */
static int out_quoted(Out *out, const uint8_t *text, Py_ssize_t size) {
    /* Room for the quotes, and 1 or 5 more bytes for each byte escaped: for a short string at
     * most 5 for each byte (counting costs more than the room), for a long one exactly (so a
     * 10 MB prompt does not take 60 MB). */
    Py_ssize_t more = 2;
    int counted = size > QUOTED_COUNTED_FROM;
    if (!counted) {
        more += size * 5;
    }
    for (Py_ssize_t i = 0; counted && i < size; i++) {
        uint8_t c = text[i];
        if (c < 0x20 || c == '"' || c == '\\') {
            int is_short = c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' ||
                           c == '\r' || c == '\t';
            more += is_short ? 1 : 5;
        }
    }
    if (size > PY_SSIZE_T_MAX - more || out_reserve(out, size + more) < 0) {
        if (!PyErr_Occurred()) {
            PyErr_NoMemory();
        }
        return -1;
    }
    char *to = out->data + out->size;
    *to++ = '"';
    for (Py_ssize_t i = 0; i < size; i++) {
        uint8_t c = text[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *to++ = (char)c;
            continue;
        }
        *to++ = '\\';
        switch (c) {
        case '"': *to++ = '"'; break;
        case '\\': *to++ = '\\'; break;
        case '\b': *to++ = 'b'; break;
        case '\f': *to++ = 'f'; break;
        case '\n': *to++ = 'n'; break;
        case '\r': *to++ = 'r'; break;
        case '\t': *to++ = 't'; break;
        default:
            *to++ = 'u';
            *to++ = '0';
            *to++ = '0';
            *to++ = HEX[c >> 4];
            *to++ = HEX[c & 15];
        }
    }
    *to++ = '"';
    Py_ssize_t written = to - (out->data + out->size);
    if (counted ? written != size + more : written > size + more) { /* the room was wrong */
        PyErr_SetString(PyExc_SystemError, "otel_bridge_speedups: a quoted string outgrew its room");
        return -1;
    }
    out->size = to - out->data;
    return 0;
}

/* A double as the Python walk writes it: json.dumps(number) (float's repr), or "NaN",
 * "Infinity", "-Infinity" in quotes. */
static int out_double(Out *out, double number) {
    if (Py_IS_NAN(number)) {
        return OUT_LITERAL(out, "\"NaN\"");
    }
    if (Py_IS_INFINITY(number)) {
        return number > 0 ? OUT_LITERAL(out, "\"Infinity\"") : OUT_LITERAL(out, "\"-Infinity\"");
    }
    char *text = PyOS_double_to_string(number, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (text == NULL) {
        return -1;
    }
    int result = out_write(out, text, (Py_ssize_t)strlen(text));
    PyMem_Free(text);
    return result;
}

/* --- reading protobuf ------------------------------------------------------------------------ */

/* Results of the readers: OK, NOT_HERE (this walk does not write it: the caller uses the
 * message), or ERROR (a Python exception is set: out of memory). */
#define OK 0
#define NOT_HERE 1
#define ERROR (-1)

typedef struct {
    const uint8_t *data;
    Py_ssize_t offset;
    Py_ssize_t end;
} Reader;

/* A varint of at most 64 bits within the reader's end; 0 when there is none. */
static int read_varint(Reader *reader, uint64_t *value) {
    uint64_t result = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (reader->offset >= reader->end) {
            return 0;
        }
        uint8_t byte = reader->data[reader->offset++];
        if (shift == 63 && byte > 1) {
            return 0; /* more than 64 bits */
        }
        result |= (uint64_t)(byte & 0x7F) << shift;
        if (!(byte & 0x80)) {
            *value = result;
            return 1;
        }
    }
    return 0;
}

/* A length-delimited field's extent, after its tag: [*start, *stop) within the reader's end. */
static int read_length(Reader *reader, Py_ssize_t *start, Py_ssize_t *stop) {
    uint64_t size;
    if (!read_varint(reader, &size) || size > (uint64_t)(reader->end - reader->offset)) {
        return 0;
    }
    *start = reader->offset;
    *stop = reader->offset + (Py_ssize_t)size;
    reader->offset = *stop;
    return 1;
}

static uint64_t little_endian(const uint8_t *bytes, int size) {
    uint64_t value = 0;
    for (int i = size - 1; i >= 0; i--) {
        value = (value << 8) | bytes[i];
    }
    return value;
}

/* Whether bytes are UTF-8 as Python's strict decoder takes it (no surrogates, no overlong
 * forms, nothing past U+10FFFF). */
static int is_utf8(const uint8_t *text, Py_ssize_t size) {
    Py_ssize_t i = 0;
    while (i < size) {
        uint8_t c = text[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        /* The sequence's length, and the range of its second byte. */
        Py_ssize_t length;
        uint8_t low = 0x80, high = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            length = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            length = 3;
            low = c == 0xE0 ? 0xA0 : low;   /* overlong */
            high = c == 0xED ? 0x9F : high; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            length = 4;
            low = c == 0xF0 ? 0x90 : low;   /* overlong */
            high = c == 0xF4 ? 0x8F : high; /* past U+10FFFF */
        } else {
            return 0;
        }
        if (size - i < length || text[i + 1] < low || text[i + 1] > high) {
            return 0;
        }
        for (Py_ssize_t k = 2; k < length; k++) {
            if ((text[i + k] & 0xC0) != 0x80) {
                return 0;
            }
        }
        i += length;
    }
    return 1;
}

/* --- attributes and status ------------------------------------------------------------------- */

/* An AnyValue, data[start:stop], when it holds a string, bool, int or double (or nothing). */
static int write_any_value(Out *out, const uint8_t *data, Py_ssize_t start, Py_ssize_t stop) {
    if (start == stop) {
        return OUT_LITERAL(out, "{}") < 0 ? ERROR : OK;
    }
    Reader reader = {data, start + 1, stop};
    uint8_t tag = data[start];
    if (tag == 0x0A) {
        Py_ssize_t text, text_end;
        if (!read_length(&reader, &text, &text_end) || text_end != stop ||
            !is_utf8(data + text, text_end - text)) {
            return NOT_HERE;
        }
        if (OUT_LITERAL(out, "{\"stringValue\":") < 0 ||
            out_quoted(out, data + text, text_end - text) < 0 || OUT_LITERAL(out, "}") < 0) {
            return ERROR;
        }
        return OK;
    }
    if (tag == 0x10 && start + 2 == stop) {
        int written = data[start + 1] ? OUT_LITERAL(out, "{\"boolValue\":true}")
                                      : OUT_LITERAL(out, "{\"boolValue\":false}");
        return written < 0 ? ERROR : OK;
    }
    if (tag == 0x18) {
        uint64_t value;
        if (!read_varint(&reader, &value) || reader.offset != stop) {
            return NOT_HERE;
        }
        if (OUT_LITERAL(out, "{\"intValue\":\"") < 0 || out_signed(out, (int64_t)value) < 0 ||
            OUT_LITERAL(out, "\"}") < 0) {
            return ERROR;
        }
        return OK;
    }
    if (tag == 0x21 && start + 9 == stop) {
        uint64_t bits = little_endian(data + start + 1, 8);
        double number;
        memcpy(&number, &bits, sizeof number);
        if (OUT_LITERAL(out, "{\"doubleValue\":") < 0 || out_double(out, number) < 0 ||
            OUT_LITERAL(out, "}") < 0) {
            return ERROR;
        }
        return OK;
    }
    return NOT_HERE;
}

/* A KeyValue, data[start:stop]: {"key":...,"value":...}, without "key" when it is empty, without
 * "value" when there is none (as the message's writer leaves them out). */
static int write_key_value(Out *out, const uint8_t *data, Py_ssize_t start, Py_ssize_t stop) {
    Reader reader = {data, start, stop};
    Py_ssize_t key = 0, key_end = 0, value = 0, value_end = 0;
    int has_value = 0;
    while (reader.offset < stop) {
        uint8_t tag = data[reader.offset++];
        Py_ssize_t field, field_end;
        if ((tag != 0x0A && tag != 0x12) || !read_length(&reader, &field, &field_end)) {
            return NOT_HERE;
        }
        if (tag == 0x0A) {
            if (!is_utf8(data + field, field_end - field)) {
                return NOT_HERE;
            }
            key = field;
            key_end = field_end;
        } else if (has_value) {
            return NOT_HERE; /* a second value (upb writes one): the Python walk checks each */
        } else {
            value = field;
            value_end = field_end;
            has_value = 1;
        }
    }
    int has_key = key_end > key;
    if (OUT_LITERAL(out, "{") < 0) {
        return ERROR;
    }
    if (has_key && (OUT_LITERAL(out, "\"key\":") < 0 ||
                    out_quoted(out, data + key, key_end - key) < 0 ||
                    (has_value && OUT_LITERAL(out, ",") < 0))) {
        return ERROR;
    }
    if (has_value) {
        if (OUT_LITERAL(out, "\"value\":") < 0) {
            return ERROR;
        }
        int result = write_any_value(out, data, value, value_end);
        if (result != OK) {
            return result;
        }
    }
    return OUT_LITERAL(out, "}") < 0 ? ERROR : OK;
}

/* Whether a Status, data[start:stop], is one this walk writes (a message and a code of one
 * byte, nothing else). */
static int read_status(const uint8_t *data, Py_ssize_t start, Py_ssize_t stop,
                       Py_ssize_t *message, Py_ssize_t *message_end, int *code) {
    Reader reader = {data, start, stop};
    *message = *message_end = 0;
    *code = 0;
    while (reader.offset < stop) {
        uint8_t tag = data[reader.offset++];
        if (tag == 0x12) {
            Py_ssize_t field, field_end;
            if (!read_length(&reader, &field, &field_end) ||
                !is_utf8(data + field, field_end - field)) {
                return 0;
            }
            *message = field;
            *message_end = field_end;
        } else if (tag == 0x18) {
            if (reader.offset >= stop || data[reader.offset] & 0x80) {
                return 0;
            }
            *code = data[reader.offset++];
        } else {
            return 0;
        }
    }
    return 1;
}

/* --- a span ---------------------------------------------------------------------------------- */

typedef struct {
    Py_ssize_t start, stop;
} Extent;

/* A Span, data[start:stop], written to `out` as the Python walk writes it. Its attributes are
 * written to `attributes` as they come (emptied first), and copied into place after. */
static int write_span(Out *out, Out *attributes, const uint8_t *data, Py_ssize_t start,
                      Py_ssize_t stop) {
    Extent trace_id = {0, 0}, span_id = {0, 0}, trace_state = {0, 0}, parent = {0, 0};
    Extent name = {0, 0};
    Py_ssize_t status_message = 0, status_message_end = 0;
    int has_status = 0, status_code = 0, kind = 0;
    uint64_t start_time = 0, end_time = 0, dropped = 0;
    uint32_t flags = 0;
    Reader reader = {data, start, stop};
    attributes->size = 0;

    while (reader.offset < stop) {
        uint8_t tag = data[reader.offset++];
        if ((tag & 7) == 2) {
            Extent field;
            if (!read_length(&reader, &field.start, &field.stop)) {
                return NOT_HERE;
            }
            switch (tag) {
            case 0x4A: { /* an attribute */
                if (attributes->size > 0 && OUT_LITERAL(attributes, ",") < 0) {
                    return ERROR;
                }
                int result = write_key_value(attributes, data, field.start, field.stop);
                if (result != OK) {
                    return result;
                }
                break;
            }
            case 0x0A: trace_id = field; break;
            case 0x12: span_id = field; break;
            case 0x22: parent = field; break;
            case 0x1A: /* the trace state */
            case 0x2A: /* the name */
                if (!is_utf8(data + field.start, field.stop - field.start)) {
                    return NOT_HERE;
                }
                *(tag == 0x1A ? &trace_state : &name) = field;
                break;
            case 0x7A:
                /* Each status is checked, as the Python walk checks each; the last is written. */
                if (!read_status(data, field.start, field.stop, &status_message,
                                 &status_message_end, &status_code)) {
                    return NOT_HERE;
                }
                has_status = 1;
                break;
            default: return NOT_HERE; /* events, links, fields not known here */
            }
        } else if (tag == 0x39 || tag == 0x41) {
            if (stop - reader.offset < 8) {
                return NOT_HERE;
            }
            uint64_t value = little_endian(data + reader.offset, 8);
            reader.offset += 8;
            if (tag == 0x39) {
                start_time = value;
            } else {
                end_time = value;
            }
        } else if (tag == 0x30) {
            if (reader.offset >= stop || data[reader.offset] & 0x80) {
                return NOT_HERE;
            }
            kind = data[reader.offset++];
        } else if (tag == 0x50) {
            if (!read_varint(&reader, &dropped)) {
                return NOT_HERE;
            }
        } else if (tag == 0x85 && reader.offset < stop && data[reader.offset] == 0x01) {
            if (stop - reader.offset < 5) {
                return NOT_HERE;
            }
            flags = (uint32_t)little_endian(data + reader.offset + 1, 4);
            reader.offset += 5;
        } else {
            return NOT_HERE;
        }
    }

    if (OUT_LITERAL(out, "{\"traceId\":\"") < 0 ||
        out_hex(out, data + trace_id.start, trace_id.stop - trace_id.start) < 0 ||
        OUT_LITERAL(out, "\",\"spanId\":\"") < 0 ||
        out_hex(out, data + span_id.start, span_id.stop - span_id.start) < 0 ||
        OUT_LITERAL(out, "\"") < 0) {
        return ERROR;
    }
    if (trace_state.stop > trace_state.start &&
        (OUT_LITERAL(out, ",\"traceState\":") < 0 ||
         out_quoted(out, data + trace_state.start, trace_state.stop - trace_state.start) < 0)) {
        return ERROR;
    }
    if (parent.stop > parent.start &&
        (OUT_LITERAL(out, ",\"parentSpanId\":\"") < 0 ||
         out_hex(out, data + parent.start, parent.stop - parent.start) < 0 ||
         OUT_LITERAL(out, "\"") < 0)) {
        return ERROR;
    }
    if (name.stop > name.start &&
        (OUT_LITERAL(out, ",\"name\":") < 0 ||
         out_quoted(out, data + name.start, name.stop - name.start) < 0)) {
        return ERROR;
    }
    if (kind && (OUT_LITERAL(out, ",\"kind\":") < 0 || out_unsigned(out, (uint64_t)kind) < 0)) {
        return ERROR;
    }
    if (start_time && (OUT_LITERAL(out, ",\"startTimeUnixNano\":\"") < 0 ||
                       out_unsigned(out, start_time) < 0 || OUT_LITERAL(out, "\"") < 0)) {
        return ERROR;
    }
    if (end_time && (OUT_LITERAL(out, ",\"endTimeUnixNano\":\"") < 0 ||
                     out_unsigned(out, end_time) < 0 || OUT_LITERAL(out, "\"") < 0)) {
        return ERROR;
    }
    if (attributes->size > 0 &&
        (OUT_LITERAL(out, ",\"attributes\":[") < 0 ||
         out_write(out, attributes->data, attributes->size) < 0 || OUT_LITERAL(out, "]") < 0)) {
        return ERROR;
    }
    if (dropped && (OUT_LITERAL(out, ",\"droppedAttributesCount\":") < 0 ||
                    out_unsigned(out, dropped) < 0)) {
        return ERROR;
    }
    if (has_status) {
        int written;
        if (status_message_end > status_message) {
            written = OUT_LITERAL(out, ",\"status\":{\"message\":") < 0 ||
                      out_quoted(out, data + status_message,
                                 status_message_end - status_message) < 0 ||
                      (status_code && (OUT_LITERAL(out, ",\"code\":") < 0 ||
                                       out_unsigned(out, (uint64_t)status_code) < 0)) ||
                      OUT_LITERAL(out, "}") < 0;
        } else if (status_code) {
            written = OUT_LITERAL(out, ",\"status\":{\"code\":") < 0 ||
                      out_unsigned(out, (uint64_t)status_code) < 0 || OUT_LITERAL(out, "}") < 0;
        } else {
            written = OUT_LITERAL(out, ",\"status\":{}") < 0;
        }
        if (written) {
            return ERROR;
        }
    }
    if (flags && (OUT_LITERAL(out, ",\"flags\":") < 0 || out_unsigned(out, flags) < 0)) {
        return ERROR;
    }
    return OUT_LITERAL(out, "}") < 0 ? ERROR : OK;
}

/* --- the module ------------------------------------------------------------------------------ */

PyDoc_STRVAR(spans_json_doc,
             "spans_json(data: bytes) -> list[str | None] | None\n\n"
             "The OTLP JSON text of each span of a ScopeSpans, from its protobuf bytes: one item "
             "per span, in order, None for a span to be written from the message instead; None "
             "when the ScopeSpans holds a field other than its scope, spans and schema URL, or is "
             "not well formed.");

static PyObject *spans_json(PyObject *module, PyObject *argument) {
    (void)module;
    Py_buffer view;
    if (PyObject_GetBuffer(argument, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const uint8_t *data = view.buf;
    Py_ssize_t end = view.len;
    PyObject *texts = PyList_New(0);
    Out out = {NULL, 0, 0};
    Out attributes = {NULL, 0, 0};
    if (texts == NULL) {
        goto failed;
    }
    Reader reader = {data, 0, end};
    while (reader.offset < end) {
        uint8_t tag = data[reader.offset++];
        Py_ssize_t field, field_end;
        /* Every field of a ScopeSpans is length-delimited and numbered under 16. */
        if ((tag & 0x87) != 2 || !read_length(&reader, &field, &field_end)) {
            Py_DECREF(texts);
            PyMem_Free(out.data);
            PyMem_Free(attributes.data);
            PyBuffer_Release(&view);
            Py_RETURN_NONE;
        }
        if (tag != 0x12) {
            continue;
        }
        out.size = 0;
        int result = write_span(&out, &attributes, data, field, field_end);
        PyObject *text;
        if (result == ERROR) {
            goto failed;
        } else if (result == OK) {
            text = PyUnicode_DecodeUTF8(out.data, out.size, "strict");
            if (text == NULL) {
                goto failed;
            }
        } else {
            text = Py_NewRef(Py_None);
        }
        int appended = PyList_Append(texts, text);
        Py_DECREF(text);
        if (appended < 0) {
            goto failed;
        }
    }
    PyMem_Free(out.data);
    PyMem_Free(attributes.data);
    PyBuffer_Release(&view);
    return texts;

failed:
    Py_XDECREF(texts);
    PyMem_Free(out.data);
    PyMem_Free(attributes.data);
    PyBuffer_Release(&view);
    return NULL;
}

static PyMethodDef methods[] = {
    {"spans_json", spans_json, METH_O, spans_json_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "otel_bridge_speedups._otlp_json",
    "OTLP JSON text of spans from their protobuf bytes (see otel_bridge.otlp_json).",
    0,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__otlp_json(void) { return PyModuleDef_Init(&module); }
