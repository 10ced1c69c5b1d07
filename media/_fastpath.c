/* Forwarding's per-packet path in C (issue 10): from the socket to every leg without a
 * Python frame in the steady state; Python keeps everything else (media/forwarder.py).
 *
 *   Sender     protects plaintext RTP/RTCP and sends it on the nominated ICE pair's host
 *              socket; Python resolves a pair once (media/hooks.py rtp_sender).
 *   Writer     one outgoing sender's header layout (MID, abs-send-time, audio level):
 *              write() gives bytes, send() writes into a stack buffer and sends through a
 *              Sender.
 *   RtpView, parse   one received packet's fields (media/rtpread.py).
 *   Stats      aiortc's StreamStatistics (receiver reports), updated per packet.
 *   SlotBase, LegBase, TrackBase   the per-packet state of forwarder.Slot, Leg and
 *              PublishedTrack (Python subclasses them): Slot.send and cached (the NACK
 *              cache), Leg.forward, and a track's steady state (track_is_steady).
 *   Ingest     a host socket's SRTP media: unprotect, route by SSRC, then the steady
 *              state in C or a view to the track's Python path.
 *
 * No libsrtp is linked: the module binds pylibsrtp's own functions when it is imported
 * (bind_libsrtp: their declarations checked against libsrtp 2's, or the import fails),
 * and takes a pylibsrtp Session's context from the Session itself (session_context),
 * keeping the Session referenced for as long as it is used. No constructor takes an
 * address. Everything runs on the event loop's thread with the GIL held.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <time.h>

#define MAX_PACKET 1500      /* protected packet, as pylibsrtp's buffer: longer is refused */
#define RTP_TRAILER 144      /* SRTP_MAX_TRAILER_LEN */
#define RTCP_TRAILER 148     /* SRTP_MAX_SRTCP_TRAILER_LEN */
#define MAX_HEAD 40          /* 12 header + 4 extension head + MID (<= 17) + 4 + 2 + pad */

typedef int (*srtp_fn)(void *ctx, void *packet, int *length);

/* libsrtp 2's declaration of srtp_protect, srtp_protect_rtcp and srtp_unprotect, as cffi
 * names it; libsrtp 3 takes separate in and out buffers and a size_t length. */
#define SRTP_SIGNATURE "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)"

static PyObject *str_state, *str_is_closing, *one, *zero;
static srtp_fn srtp_protect_fn, srtp_protect_rtcp_fn, srtp_unprotect_fn;
static PyObject *session_type; /* pylibsrtp.Session */
static PyObject *srtp_ffi;     /* pylibsrtp._binding.ffi */
static PyObject *srtp_pointer; /* ffi.typeof("srtp_t *"): the type of Session._srtp */

/* ffi.cast("uintptr_t", cdata) as a C pointer; NULL with an exception set. */
static void *
cdata_address(PyObject *cdata)
{
    PyObject *number = PyObject_CallMethod(srtp_ffi, "cast", "sO", "uintptr_t", cdata);
    if (number == NULL)
        return NULL;
    PyObject *integer = PyNumber_Long(number);
    Py_DECREF(number);
    if (integer == NULL)
        return NULL;
    void *address = PyLong_AsVoidPtr(integer);
    Py_DECREF(integer);
    if (address == NULL && !PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "a NULL libsrtp pointer");
    return address;
}

/* The address of pylibsrtp's ``name`` once its declaration is checked; NULL with an
 * exception set. */
static srtp_fn
bind_function(PyObject *lib, const char *name)
{
    PyObject *function = PyObject_GetAttrString(lib, name);
    if (function == NULL)
        return NULL;
    PyObject *ctype = PyObject_CallMethod(srtp_ffi, "typeof", "O", function);
    Py_DECREF(function);
    PyObject *cname = ctype ? PyObject_GetAttrString(ctype, "cname") : NULL;
    Py_XDECREF(ctype);
    if (cname == NULL)
        return NULL;
    const char *declared = PyUnicode_AsUTF8(cname);
    if (declared == NULL || strcmp(declared, SRTP_SIGNATURE) != 0) {
        if (declared != NULL)
            PyErr_Format(PyExc_ImportError,
                         "pylibsrtp's libsrtp declares %s as %s; media/_fastpath.c calls it "
                         "as %s (libsrtp 2)",
                         name, declared, SRTP_SIGNATURE);
        Py_DECREF(cname);
        return NULL;
    }
    Py_DECREF(cname);
    PyObject *pointer = PyObject_CallMethod(srtp_ffi, "addressof", "Os", lib, name);
    if (pointer == NULL)
        return NULL;
    void *address = cdata_address(pointer);
    Py_DECREF(pointer);
    return (srtp_fn)(uintptr_t)address;
}

/* Bind pylibsrtp's functions and types (at import); -1 with an exception set. */
static int
bind_libsrtp(void)
{
    PyObject *binding = PyImport_ImportModule("pylibsrtp._binding");
    PyObject *pylibsrtp = binding ? PyImport_ImportModule("pylibsrtp") : NULL;
    PyObject *lib = binding ? PyObject_GetAttrString(binding, "lib") : NULL;
    int result = -1;
    if (pylibsrtp == NULL || lib == NULL)
        goto done;
    srtp_ffi = PyObject_GetAttrString(binding, "ffi");
    session_type = srtp_ffi ? PyObject_GetAttrString(pylibsrtp, "Session") : NULL;
    if (session_type == NULL)
        goto done;
    if (!PyType_Check(session_type)) {
        PyErr_SetString(PyExc_ImportError, "pylibsrtp.Session is not a class");
        goto done;
    }
    srtp_pointer = PyObject_CallMethod(srtp_ffi, "typeof", "s", "srtp_t *");
    if (srtp_pointer == NULL || !(srtp_protect_fn = bind_function(lib, "srtp_protect")) ||
        !(srtp_protect_rtcp_fn = bind_function(lib, "srtp_protect_rtcp")) ||
        !(srtp_unprotect_fn = bind_function(lib, "srtp_unprotect")))
        goto done;
    result = 0;
done:
    Py_XDECREF(binding);
    Py_XDECREF(pylibsrtp);
    Py_XDECREF(lib);
    return result;
}

/* The libsrtp context of ``session``, a pylibsrtp Session; NULL with an exception set. */
static void *
session_context(PyObject *session)
{
    if (!PyObject_TypeCheck(session, (PyTypeObject *)session_type)) {
        PyErr_Format(PyExc_TypeError, "a pylibsrtp.Session is needed, not %.100s",
                     Py_TYPE(session)->tp_name);
        return NULL;
    }
    PyObject *srtp = PyObject_GetAttrString(session, "_srtp");
    if (srtp == NULL)
        return NULL;
    void *context = NULL;
    PyObject *ctype = PyObject_CallMethod(srtp_ffi, "typeof", "O", srtp);
    if (ctype != NULL && ctype != srtp_pointer)
        PyErr_SetString(PyExc_TypeError, "Session._srtp is not an srtp_t *");
    else if (ctype != NULL) {
        PyObject *item = PyObject_GetItem(srtp, zero);
        if (item != NULL)
            context = cdata_address(item);
        Py_XDECREF(item);
    }
    Py_XDECREF(ctype);
    Py_DECREF(srtp);
    return context;
}

static int
is_rtcp(const unsigned char *data, Py_ssize_t length)
{
    /* aiortc's is_rtcp: second byte 192..208 */
    return length >= 2 && data[1] >= 192 && data[1] <= 208;
}

/* -- Sender ------------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *dtls;      /* aiortc's RTCDtlsTransport */
    PyObject *connected; /* DtlsState.CONNECTED */
    PyObject *nominated; /* aioice Connection._nominated: component -> pair */
    PyObject *resolve;   /* pair -> (udp transport, fd, host, port, pylibsrtp Session) or
                            None (not a host pair) */
    PyObject *later;     /* bytes -> None: aiortc's own send, for a pair that is not ours */
    PyObject *pair;      /* the pair resolved last (NULL: none yet) */
    PyObject *udp;       /* its asyncio transport (NULL: send through later) */
    PyObject *session;
    int fd;
    struct sockaddr_storage address;
    socklen_t address_length;
    void *ctx;
    unsigned long long sent, dropped;
} Sender;


static int
Sender_traverse(Sender *self, visitproc visit, void *arg)
{
    Py_VISIT(self->dtls);
    Py_VISIT(self->connected);
    Py_VISIT(self->nominated);
    Py_VISIT(self->resolve);
    Py_VISIT(self->later);
    Py_VISIT(self->pair);
    Py_VISIT(self->udp);
    Py_VISIT(self->session);
    return 0;
}

static int
Sender_clear(Sender *self)
{
    Py_CLEAR(self->dtls);
    Py_CLEAR(self->connected);
    Py_CLEAR(self->nominated);
    Py_CLEAR(self->resolve);
    Py_CLEAR(self->later);
    Py_CLEAR(self->pair);
    Py_CLEAR(self->udp);
    Py_CLEAR(self->session);
    return 0;
}

static void
Sender_dealloc(Sender *self)
{
    PyObject_GC_UnTrack(self);
    Sender_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
Sender_init(Sender *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"dtls", "connected", "nominated", "resolve", "later", NULL};
    PyObject *dtls, *connected, *nominated, *resolve, *later;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO!OO", kwlist, &dtls, &connected,
                                     &PyDict_Type, &nominated, &resolve, &later))
        return -1;
    Sender_clear(self);
    Py_INCREF(dtls);
    self->dtls = dtls;
    Py_INCREF(connected);
    self->connected = connected;
    Py_INCREF(nominated);
    self->nominated = nominated;
    Py_INCREF(resolve);
    self->resolve = resolve;
    Py_INCREF(later);
    self->later = later;
    return 0;
}

/* Take the route ``resolve`` gives for ``pair``; -1 with an exception set. */
static int
Sender_route(Sender *self, PyObject *pair)
{
    PyObject *route = PyObject_CallOneArg(self->resolve, pair);
    if (route == NULL)
        return -1;
    Py_CLEAR(self->udp);
    Py_CLEAR(self->session);
    Py_INCREF(pair);
    Py_XSETREF(self->pair, pair);
    if (route == Py_None) {
        Py_DECREF(route);
        return 0;
    }
    PyObject *udp, *session;
    int fd, port;
    const char *host;
    void *ctx = NULL;
    if (!PyArg_ParseTuple(route, "OisiO", &udp, &fd, &host, &port, &session) ||
        !(ctx = session_context(session))) {
        Py_DECREF(route);
        Py_CLEAR(self->pair);
        return -1;
    }
    memset(&self->address, 0, sizeof(self->address));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&self->address;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&self->address;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        self->address_length = sizeof(*v4);
    }
    else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        self->address_length = sizeof(*v6);
    }
    else { /* not a plain IP address (a scoped IPv6 one): aiortc's own send */
        Py_DECREF(route);
        return 0;
    }
    Py_INCREF(udp);
    self->udp = udp;
    Py_INCREF(session);
    self->session = session;
    self->fd = fd;
    self->ctx = ctx;
    Py_DECREF(route);
    return 0;
}

/* Protect ``buffer`` (``length`` bytes of plaintext in MAX_PACKET bytes) and send it. 0 when sent or dropped as the Python version drops (not connected, no pair,
 * not protectable, a full socket); -1 with an exception set. */
static int
Sender_send_buffer(Sender *self, unsigned char *buffer, int length)
{
    if (self->dtls == NULL) {
        PyErr_SetString(PyExc_TypeError, "Sender not initialised");
        return -1;
    }
    PyObject *state = PyObject_GetAttr(self->dtls, str_state);
    if (state == NULL)
        return -1;
    Py_DECREF(state); /* only compared by identity */
    if (state != self->connected)
        return 0;
    PyObject *pair = PyDict_GetItemWithError(self->nominated, one);
    if (pair == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (pair != self->pair) {
        Py_INCREF(pair); /* resolving runs Python */
        int routed = Sender_route(self, pair);
        Py_DECREF(pair);
        if (routed < 0)
            return -1;
    }
    if (self->udp == NULL) {
        PyObject *data = PyBytes_FromStringAndSize((const char *)buffer, length);
        if (data == NULL)
            return -1;
        PyObject *result = PyObject_CallOneArg(self->later, data);
        Py_DECREF(data);
        if (result == NULL)
            return -1;
        Py_DECREF(result);
        return 0;
    }
    PyObject *closing = PyObject_CallMethodNoArgs(self->udp, str_is_closing);
    if (closing == NULL)
        return -1;
    int closed = PyObject_IsTrue(closing);
    Py_DECREF(closing);
    if (closed)
        return closed < 0 ? -1 : 0; /* the socket may be gone: never touch its fd */
    int rtcp = is_rtcp(buffer, length);
    if (length > MAX_PACKET - (rtcp ? RTCP_TRAILER : RTP_TRAILER)) {
        self->dropped++; /* not protectable: aiortc would raise; nothing is sent */
        return 0;
    }
    if ((rtcp ? srtp_protect_rtcp_fn : srtp_protect_fn)(self->ctx, buffer, &length) != 0) {
        self->dropped++;
        return 0;
    }
    if (sendto(self->fd, buffer, (size_t)length, 0, (struct sockaddr *)&self->address,
               self->address_length) < 0) {
        self->dropped++;
        return 0;
    }
    self->sent++;
    return 0;
}

static PyObject *
Sender_call(Sender *self, PyObject *args, PyObject *kwds)
{
    Py_buffer view;
    _Alignas(16) unsigned char buffer[MAX_PACKET]; /* libsrtp reads words */
    if (kwds != NULL && PyDict_GET_SIZE(kwds)) {
        PyErr_SetString(PyExc_TypeError, "Sender takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*", &view))
        return NULL;
    if (view.len > MAX_PACKET) {
        PyBuffer_Release(&view);
        self->dropped++;
        Py_RETURN_NONE;
    }
    memcpy(buffer, view.buf, view.len);
    int length = (int)view.len;
    PyBuffer_Release(&view);
    if (Sender_send_buffer(self, buffer, length) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMemberDef Sender_members[] = {
    {"sent", T_ULONGLONG, offsetof(Sender, sent), READONLY, "packets sent on the socket"},
    {"dropped", T_ULONGLONG, offsetof(Sender, dropped), READONLY,
     "packets not protectable or refused by the socket"},
    {NULL},
};

static PyTypeObject SenderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "media._fastpath.Sender",
    .tp_basicsize = sizeof(Sender),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Sender(dtls, connected, nominated, resolve, later): protect and send.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Sender_init,
    .tp_dealloc = (destructor)Sender_dealloc,
    .tp_traverse = (traverseproc)Sender_traverse,
    .tp_clear = (inquiry)Sender_clear,
    .tp_call = (ternaryfunc)Sender_call,
    .tp_members = Sender_members,
};

/* -- Writer ------------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    unsigned char mid[17]; /* the MID element (ID and length byte, value), or nothing */
    int mid_length, ast_id, audio_id;
} Writer;

static int
Writer_init(Writer *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"mid_element", "abs_send_time_id", "audio_level_id", NULL};
    Py_buffer mid = {0};
    int ast_id = 0, audio_id = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|y*ii", kwlist, &mid, &ast_id, &audio_id))
        return -1;
    if (mid.len > 17 || ast_id < 0 || ast_id > 14 || audio_id < 0 || audio_id > 14) {
        PyBuffer_Release(&mid);
        PyErr_SetString(PyExc_ValueError, "MID element over 17 bytes, or an ID outside 0..14");
        return -1;
    }
    self->mid_length = (int)mid.len;
    if (mid.len)
        memcpy(self->mid, mid.buf, mid.len);
    PyBuffer_Release(&mid);
    self->ast_id = ast_id;
    self->audio_id = audio_id;
    return 0;
}

/* Write the packet's header and payload into ``out`` (room for MAX_HEAD + payload);
 * returns its length. ``level`` < 0: no audio level element. */
static int
write_packet(const Writer *w, unsigned char *out, int payload_type, int marker,
             unsigned int seq, unsigned long timestamp, unsigned long ssrc,
             const unsigned char *payload, Py_ssize_t payload_length, unsigned long send_time,
             int level)
{
    int size = w->mid_length + (w->ast_id ? 4 : 0) + (level >= 0 && w->audio_id ? 2 : 0);
    int pad = (4 - size % 4) % 4;
    out[0] = size ? 0x90 : 0x80;
    out[1] = (unsigned char)((marker ? 0x80 : 0) | (payload_type & 0x7F));
    out[2] = (unsigned char)(seq >> 8);
    out[3] = (unsigned char)seq;
    out[4] = (unsigned char)(timestamp >> 24);
    out[5] = (unsigned char)(timestamp >> 16);
    out[6] = (unsigned char)(timestamp >> 8);
    out[7] = (unsigned char)timestamp;
    out[8] = (unsigned char)(ssrc >> 24);
    out[9] = (unsigned char)(ssrc >> 16);
    out[10] = (unsigned char)(ssrc >> 8);
    out[11] = (unsigned char)ssrc;
    int pos = 12;
    if (size) {
        int words = (size + pad) / 4;
        out[pos++] = 0xBE;
        out[pos++] = 0xDE;
        out[pos++] = (unsigned char)(words >> 8);
        out[pos++] = (unsigned char)words;
        memcpy(out + pos, w->mid, w->mid_length);
        pos += w->mid_length;
        if (w->ast_id) {
            out[pos++] = (unsigned char)(w->ast_id << 4 | 2);
            out[pos++] = (unsigned char)(send_time >> 16);
            out[pos++] = (unsigned char)(send_time >> 8);
            out[pos++] = (unsigned char)send_time;
        }
        if (level >= 0 && w->audio_id) {
            out[pos++] = (unsigned char)(w->audio_id << 4);
            out[pos++] = (unsigned char)level;
        }
        memset(out + pos, 0, pad);
        pos += pad;
    }
    memcpy(out + pos, payload, payload_length);
    return pos + (int)payload_length;
}

/* The arguments of write() and send(): payload type, marker, sequence number, timestamp,
 * SSRC, payload, abs-send-time, and the audio level (None or (voice, level)). */
typedef struct {
    int payload_type, marker, level;
    unsigned int seq;
    unsigned long timestamp, ssrc, send_time;
    Py_buffer payload;
} Fields;

/* An integer argument masked to ``mask`` (as the packet field it fills); -1 with an
 * exception set if it is not an integer. */
static int
masked(PyObject *value, unsigned long mask, unsigned long *out)
{
    unsigned long v = PyLong_AsUnsignedLongMask(value);
    if (v == (unsigned long)-1 && PyErr_Occurred())
        return -1;
    *out = v & mask;
    return 0;
}

/* The audio level byte of (voice, level); -1 for None, -2 with an exception set. */
static int
level_of(PyObject *audio_level)
{
    if (audio_level == Py_None)
        return -1;
    if (!PyTuple_Check(audio_level) || PyTuple_GET_SIZE(audio_level) != 2) {
        PyErr_SetString(PyExc_TypeError, "audio_level: None or (voice, level)");
        return -2;
    }
    int voice = PyObject_IsTrue(PyTuple_GET_ITEM(audio_level, 0));
    long value = PyLong_AsLong(PyTuple_GET_ITEM(audio_level, 1));
    if (voice < 0 || (value == -1 && PyErr_Occurred()))
        return -2;
    return (voice ? 0x80 : 0) | (int)(value & 0x7F);
}

static int
parse_fields(PyObject *const *args, Py_ssize_t nargs, Fields *f)
{
    if (nargs < 7 || nargs > 8) {
        PyErr_SetString(PyExc_TypeError,
                        "expected payload_type, marker, sequence_number, timestamp, ssrc, "
                        "payload, send_time[, audio_level]");
        return -1;
    }
    unsigned long payload_type, marker, seq;
    if (masked(args[0], 0x7F, &payload_type) < 0 || masked(args[1], 1, &marker) < 0 ||
        masked(args[2], 0xFFFF, &seq) < 0 || masked(args[3], 0xFFFFFFFFUL, &f->timestamp) < 0 ||
        masked(args[4], 0xFFFFFFFFUL, &f->ssrc) < 0 || masked(args[6], 0xFFFFFF, &f->send_time) < 0)
        return -1;
    f->payload_type = (int)payload_type;
    f->marker = (int)marker;
    f->seq = (unsigned int)seq;
    f->level = -1;
    if (nargs == 8 && (f->level = level_of(args[7])) == -2)
        return -1;
    return PyObject_GetBuffer(args[5], &f->payload, PyBUF_SIMPLE);
}

/* Write the packet on the stack and send it through ``sender``; one too long to protect
 * is counted as dropped, nothing sent. 0, or -1 with an exception set. */
static int
write_and_send(const Writer *w, Sender *sender, int payload_type, int marker, unsigned int seq,
               unsigned long timestamp, unsigned long ssrc, const unsigned char *payload,
               Py_ssize_t payload_length, unsigned long send_time, int level)
{
    _Alignas(16) unsigned char out[MAX_PACKET]; /* libsrtp reads words */
    if (payload_length > MAX_PACKET - MAX_HEAD) {
        sender->dropped++;
        return 0;
    }
    int length = write_packet(w, out, payload_type, marker, seq, timestamp, ssrc, payload,
                              payload_length, send_time, level);
    Py_INCREF(sender); /* sending may run Python (a new pair resolved) */
    int result = Sender_send_buffer(sender, out, length);
    Py_DECREF(sender);
    return result;
}

static PyObject *
Writer_write(Writer *self, PyObject *const *args, Py_ssize_t nargs)
{
    Fields f;
    if (parse_fields(args, nargs, &f) < 0)
        return NULL;
    PyObject *packet = PyBytes_FromStringAndSize(NULL, MAX_HEAD + f.payload.len);
    if (packet != NULL) {
        int length = write_packet(self, (unsigned char *)PyBytes_AS_STRING(packet),
                                  f.payload_type, f.marker, f.seq, f.timestamp, f.ssrc,
                                  f.payload.buf, f.payload.len, f.send_time, f.level);
        _PyBytes_Resize(&packet, length);
    }
    PyBuffer_Release(&f.payload);
    return packet;
}

static PyObject *
Writer_send(Writer *self, PyObject *const *args, Py_ssize_t nargs)
{
    Fields f;
    if (nargs < 1 || !PyObject_TypeCheck(args[0], &SenderType)) {
        PyErr_SetString(PyExc_TypeError, "send(sender, ...): a Sender first");
        return NULL;
    }
    if (parse_fields(args + 1, nargs - 1, &f) < 0)
        return NULL;
    int result = write_and_send(self, (Sender *)args[0], f.payload_type, f.marker, f.seq,
                                f.timestamp, f.ssrc, f.payload.buf, f.payload.len,
                                f.send_time, f.level);
    PyBuffer_Release(&f.payload);
    if (result < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef Writer_methods[] = {
    {"write", (PyCFunction)(void (*)(void))Writer_write, METH_FASTCALL,
     "write(payload_type, marker, sequence_number, timestamp, ssrc, payload, send_time"
     "[, audio_level]) -> bytes"},
    {"send", (PyCFunction)(void (*)(void))Writer_send, METH_FASTCALL,
     "send(sender, payload_type, marker, sequence_number, timestamp, ssrc, payload, "
     "send_time[, audio_level]): write the packet and send it through ``sender``"},
    {NULL},
};

static PyMemberDef Writer_members[] = {
    {"audio_level_id", T_INT, offsetof(Writer, audio_id), READONLY, NULL},
    {"abs_send_time_id", T_INT, offsetof(Writer, ast_id), READONLY, NULL},
    {NULL},
};

static PyTypeObject WriterType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "media._fastpath.Writer",
    .tp_basicsize = sizeof(Writer),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Writer(mid_element=b'', abs_send_time_id=0, audio_level_id=0)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Writer_init,
    .tp_methods = Writer_methods,
    .tp_members = Writer_members,
};


/* -- RtpView and parse ------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *payload;     /* bytes */
    PyObject *audio_level; /* None or (voice, level) */
    long payload_type, marker, sequence_number;
    unsigned long timestamp, ssrc;
} RtpView;

static PyTypeObject RtpViewType;

static PyObject *
RtpView_make(long payload_type, long marker, long seq, unsigned long timestamp,
             unsigned long ssrc, PyObject *payload, PyObject *audio_level)
{
    RtpView *view = PyObject_New(RtpView, &RtpViewType);
    if (view == NULL)
        return NULL;
    view->payload_type = payload_type;
    view->marker = marker;
    view->sequence_number = seq;
    view->timestamp = timestamp;
    view->ssrc = ssrc;
    Py_INCREF(payload);
    view->payload = payload;
    Py_INCREF(audio_level);
    view->audio_level = audio_level;
    return (PyObject *)view;
}

static PyObject *
RtpView_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"payload_type", "marker", "sequence_number", "timestamp",
                             "ssrc", "payload", "audio_level", NULL};
    long payload_type, marker, seq;
    unsigned long timestamp, ssrc;
    PyObject *payload, *audio_level = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "lllkkS|O", kwlist, &payload_type, &marker,
                                     &seq, &timestamp, &ssrc, &payload, &audio_level))
        return NULL;
    return RtpView_make(payload_type, marker, seq, timestamp, ssrc, payload, audio_level);
}

static void
RtpView_dealloc(RtpView *self)
{
    Py_XDECREF(self->payload);
    Py_XDECREF(self->audio_level);
    PyObject_Free(self);
}

static PyObject *
RtpView_repr(RtpView *self)
{
    return PyUnicode_FromFormat("RtpView(pt=%ld, m=%ld, seq=%ld, ts=%lu, ssrc=%lu, %zd bytes)",
                                self->payload_type, self->marker, self->sequence_number,
                                self->timestamp, self->ssrc, PyBytes_GET_SIZE(self->payload));
}

static PyMemberDef RtpView_members[] = {
    {"payload_type", T_LONG, offsetof(RtpView, payload_type), 0, NULL},
    {"marker", T_LONG, offsetof(RtpView, marker), 0, NULL},
    {"sequence_number", T_LONG, offsetof(RtpView, sequence_number), 0, NULL},
    {"timestamp", T_ULONG, offsetof(RtpView, timestamp), 0, NULL},
    {"ssrc", T_ULONG, offsetof(RtpView, ssrc), 0, NULL},
    {"payload", T_OBJECT_EX, offsetof(RtpView, payload), READONLY, NULL},
    {"audio_level", T_OBJECT_EX, offsetof(RtpView, audio_level), READONLY, NULL},
    {NULL},
};

static PyTypeObject RtpViewType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "media.rtpread.RtpView",
    .tp_basicsize = sizeof(RtpView),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "RtpView(payload_type, marker, sequence_number, timestamp, ssrc, payload, "
              "audio_level=None): one media packet (RTX already unwrapped); audio_level is "
              "(voice, level) if the packet carried one and it was asked for.",
    .tp_new = RtpView_new,
    .tp_dealloc = (destructor)RtpView_dealloc,
    .tp_repr = (reprfunc)RtpView_repr,
    .tp_members = RtpView_members,
};

/* Walk the extension elements in [pos, end) as aiortc does (RFC 8285, one- or two-byte
 * form): 0 if one runs past the block, or element ``wanted`` is not one byte long (aiortc
 * raises), else 1 with *level the byte of the last element ``wanted`` (-1: none, or
 * ``wanted`` is 0). */
static int
read_extensions(const unsigned char *data, Py_ssize_t pos, Py_ssize_t end, int wanted,
                int two_byte, int *level)
{
    *level = -1;
    while (pos < end) {
        int element = data[pos], ident, length;
        Py_ssize_t start;
        if (element == 0) { /* padding */
            pos++;
            continue;
        }
        if (two_byte) { /* ID byte, length byte, data */
            if (pos + 2 > end)
                return 0;
            ident = element;
            length = data[pos + 1];
            start = pos + 2;
        }
        else { /* ID and length - 1 in one byte, data */
            ident = element >> 4;
            length = (element & 0x0F) + 1;
            start = pos + 1;
        }
        if (start + length > end)
            return 0;
        if (wanted && ident == wanted) {
            if (length != 1)
                return 0;
            *level = data[start];
        }
        pos = start + length;
    }
    return 1;
}

static PyObject *
audio_level_tuple(int level)
{
    if (level < 0)
        Py_RETURN_NONE;
    return Py_BuildValue("(Oi)", (level & 0x80) ? Py_True : Py_False, level & 0x7F);
}

/* The fields of one RTP packet, read in place. */
typedef struct {
    long payload_type, marker, seq;
    unsigned long timestamp, ssrc;
    Py_ssize_t payload, payload_length; /* offset and length of the payload */
    int level;                          /* audio level byte, -1: none (or not asked) */
} Header;

/* Read the header of ``data``; 0 if it is not a well-formed packet. */
static int
read_header(const unsigned char *data, Py_ssize_t size, int audio_id, Header *h)
{
    if (size < 12 || data[0] >> 6 != 2)
        return 0;
    int first = data[0];
    Py_ssize_t pos = 12 + 4 * (first & 0x0F);
    h->level = -1;
    if (pos > size)
        return 0;
    if (first & 0x10) {
        if (pos + 4 > size)
            return 0;
        int profile = data[pos] << 8 | data[pos + 1];
        Py_ssize_t end = pos + 4 + 4 * (data[pos + 2] << 8 | data[pos + 3]);
        pos += 4;
        if (end > size)
            return 0;
        if ((profile == 0xBEDE || profile == 0x1000) &&
            !read_extensions(data, pos, end, audio_id, profile == 0x1000, &h->level))
            return 0;
        pos = end;
    }
    if (first & 0x20) {
        int padding = data[size - 1];
        if (padding == 0 || pos + padding > size)
            return 0;
        size -= padding;
    }
    h->payload_type = data[1] & 0x7F;
    h->marker = data[1] >> 7;
    h->seq = data[2] << 8 | data[3];
    h->timestamp = (unsigned long)data[4] << 24 | data[5] << 16 | data[6] << 8 | data[7];
    h->ssrc = (unsigned long)data[8] << 24 | data[9] << 16 | data[10] << 8 | data[11];
    h->payload = pos;
    h->payload_length = size - pos;
    return 1;
}

static PyObject *
view_of(const Header *h, PyObject *payload)
{
    PyObject *audio_level = audio_level_tuple(h->level);
    if (audio_level == NULL)
        return NULL;
    PyObject *view = RtpView_make(h->payload_type, h->marker, h->seq, h->timestamp, h->ssrc,
                                  payload, audio_level);
    Py_DECREF(audio_level);
    return view;
}

/* The RtpView of ``data``; Py_None (a new reference) if it is not a well-formed packet. */
static PyObject *
parse_packet(const unsigned char *data, Py_ssize_t size, int audio_id)
{
    Header h;
    if (!read_header(data, size, audio_id, &h))
        Py_RETURN_NONE;
    PyObject *payload =
        PyBytes_FromStringAndSize((const char *)data + h.payload, h.payload_length);
    if (payload == NULL)
        return NULL;
    PyObject *view = view_of(&h, payload);
    Py_DECREF(payload);
    return view;
}

static PyObject *
parse(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data;
    int audio_id = 0;
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "parse(data, audio_level_id=0)");
        return NULL;
    }
    if (nargs == 2) {
        audio_id = (int)PyLong_AsLong(args[1]);
        if (audio_id == -1 && PyErr_Occurred())
            return NULL;
    }
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *view = parse_packet(data.buf, data.len, audio_id);
    PyBuffer_Release(&data);
    return view;
}


/* -- Stats: aiortc's StreamStatistics (what receiver reports say), in C ------------------ */

#define PACKETS_LOST_MIN (-0x800000LL)
#define PACKETS_LOST_MAX 0x7FFFFFLL
#define NTP_EPOCH_OFFSET 2208988800.0

typedef struct {
    PyObject_HEAD
    long long base_seq, max_seq; /* -1: none yet */
    long long cycles, packets_received, clockrate, jitter_q4;
    long long last_arrival, last_timestamp;
    int has_last;
    long long expected_prior, received_prior;
} Stats;

static PyTypeObject StatsType;

static int
uint16_gt(long a, long b)
{
    return (a < b && b - a > 0x8000) || (a > b && a - b < 0x8000);
}

static double
now_of(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void
stats_add(Stats *s, long seq, unsigned long timestamp, double now)
{
    int in_order = s->max_seq < 0 || uint16_gt(seq, (long)s->max_seq);
    s->packets_received++;
    if (s->base_seq < 0)
        s->base_seq = seq;
    if (!in_order)
        return;
    long long arrival = (long long)(now * (double)s->clockrate);
    if (s->max_seq >= 0 && seq < s->max_seq)
        s->cycles += 1 << 16;
    s->max_seq = seq;
    if (s->has_last && (long long)timestamp != s->last_timestamp && s->packets_received > 1) {
        long long diff = llabs((arrival - s->last_arrival) - ((long long)timestamp - s->last_timestamp));
        s->jitter_q4 += diff - ((s->jitter_q4 + 8) >> 4);
    }
    s->last_arrival = arrival;
    s->last_timestamp = (long long)timestamp;
    s->has_last = 1;
}

static PyObject *
Stats_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"clockrate", NULL};
    long long clockrate;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "L", kwlist, &clockrate))
        return NULL;
    Stats *s = (Stats *)type->tp_alloc(type, 0);
    if (s == NULL)
        return NULL;
    s->base_seq = s->max_seq = -1;
    s->clockrate = clockrate;
    return (PyObject *)s;
}

static PyObject *
Stats_add(Stats *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "add(packet, now=None)");
        return NULL;
    }
    unsigned long seq = 0, timestamp = 0;
    PyObject *value = PyObject_GetAttrString(args[0], "sequence_number");
    int bad = value == NULL || masked(value, 0xFFFF, &seq) < 0;
    Py_XDECREF(value);
    if (bad)
        return NULL;
    value = PyObject_GetAttrString(args[0], "timestamp");
    bad = value == NULL || masked(value, 0xFFFFFFFFUL, &timestamp) < 0;
    Py_XDECREF(value);
    if (bad)
        return NULL;
    double now = now_of(CLOCK_REALTIME);
    if (nargs == 2 && args[1] != Py_None) {
        now = PyFloat_AsDouble(args[1]);
        if (now == -1.0 && PyErr_Occurred())
            return NULL;
    }
    stats_add(self, (long)seq, timestamp, now);
    Py_RETURN_NONE;
}

static int
stats_started(Stats *self)
{
    if (self->max_seq < 0) {
        PyErr_SetString(PyExc_TypeError, "no packet yet");
        return 0;
    }
    return 1;
}

static PyObject *
Stats_packets_expected(Stats *self, void *closure)
{
    if (!stats_started(self))
        return NULL;
    return PyLong_FromLongLong(self->cycles + self->max_seq - self->base_seq + 1);
}

static PyObject *
Stats_packets_lost(Stats *self, void *closure)
{
    if (!stats_started(self))
        return NULL;
    long long lost = self->cycles + self->max_seq - self->base_seq + 1 - self->packets_received;
    lost = lost < PACKETS_LOST_MIN ? PACKETS_LOST_MIN : lost > PACKETS_LOST_MAX ? PACKETS_LOST_MAX : lost;
    return PyLong_FromLongLong(lost);
}

static PyObject *
Stats_fraction_lost(Stats *self, void *closure)
{
    if (!stats_started(self))
        return NULL;
    long long expected = self->cycles + self->max_seq - self->base_seq + 1;
    long long expected_interval = expected - self->expected_prior;
    self->expected_prior = expected;
    long long received_interval = self->packets_received - self->received_prior;
    self->received_prior = self->packets_received;
    long long lost_interval = expected_interval - received_interval;
    if (expected_interval == 0 || lost_interval <= 0)
        return PyLong_FromLong(0);
    return PyLong_FromLongLong((lost_interval << 8) / expected_interval);
}

static PyObject *
Stats_jitter(Stats *self, void *closure)
{
    return PyLong_FromLongLong(self->jitter_q4 >> 4);
}

static PyObject *
optional_seq(long long value)
{
    if (value < 0)
        Py_RETURN_NONE;
    return PyLong_FromLongLong(value);
}

static PyObject *
Stats_base_seq(Stats *self, void *closure)
{
    return optional_seq(self->base_seq);
}

static PyObject *
Stats_max_seq(Stats *self, void *closure)
{
    return optional_seq(self->max_seq);
}

static PyGetSetDef Stats_getset[] = {
    {"base_seq", (getter)Stats_base_seq, NULL, NULL, NULL},
    {"max_seq", (getter)Stats_max_seq, NULL, NULL, NULL},
    {"packets_expected", (getter)Stats_packets_expected, NULL, NULL, NULL},
    {"packets_lost", (getter)Stats_packets_lost, NULL, NULL, NULL},
    {"fraction_lost", (getter)Stats_fraction_lost, NULL,
     "lost since the last read, of 256 (reading it starts a new interval)", NULL},
    {"jitter", (getter)Stats_jitter, NULL, NULL, NULL},
    {NULL},
};

static PyMemberDef Stats_members[] = {
    {"cycles", T_LONGLONG, offsetof(Stats, cycles), READONLY, NULL},
    {"packets_received", T_LONGLONG, offsetof(Stats, packets_received), READONLY, NULL},
    {NULL},
};

static PyMethodDef Stats_methods[] = {
    {"add", (PyCFunction)(void (*)(void))Stats_add, METH_FASTCALL,
     "add(packet, now=None): one arrival (now: time.time())"},
    {NULL},
};

static PyTypeObject StatsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "media._fastpath.Stats",
    .tp_basicsize = sizeof(Stats),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Stats(clockrate): aiortc's StreamStatistics, for one received SSRC.",
    .tp_new = Stats_new,
    .tp_methods = Stats_methods,
    .tp_members = Stats_members,
    .tp_getset = Stats_getset,
};

/* -- SlotBase: an outgoing sender's sequence space, counters and packet cache ------------ */

#define CACHE_SIZE 1024

typedef struct {
    long seq; /* -1: empty */
    long marker;
    unsigned long timestamp;
    PyObject *payload;
} Cached;

typedef struct {
    PyObject_HEAD
    PyObject *writer, *sender;
    long payload_type;
    unsigned long ssrc;
    long next_seq;
    unsigned long last_timestamp;
    double last_sent_at;
    unsigned long long packets, octets;
    Cached cache[CACHE_SIZE];
} SlotBase;

static PyTypeObject SlotBaseType;

static PyObject *
SlotBase_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    SlotBase *self = (SlotBase *)type->tp_alloc(type, 0);
    if (self != NULL)
        for (int i = 0; i < CACHE_SIZE; i++)
            self->cache[i].seq = -1;
    return (PyObject *)self;
}

static int
SlotBase_traverse(SlotBase *self, visitproc visit, void *arg)
{
    Py_VISIT(self->writer);
    Py_VISIT(self->sender);
    return 0;
}

static int
SlotBase_clear(SlotBase *self)
{
    Py_CLEAR(self->writer);
    Py_CLEAR(self->sender);
    for (int i = 0; i < CACHE_SIZE; i++) {
        self->cache[i].seq = -1;
        Py_CLEAR(self->cache[i].payload);
    }
    return 0;
}

static void
SlotBase_dealloc(SlotBase *self)
{
    PyObject_GC_UnTrack(self);
    SlotBase_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Keep the packet for NACKs, count it, write it and send it. */
static int
slot_send(SlotBase *self, long marker, long seq, unsigned long timestamp, PyObject *payload,
          int level, unsigned long send_time)
{
    if (self->writer == NULL || !PyObject_TypeCheck(self->writer, &WriterType) ||
        self->sender == NULL || !PyObject_TypeCheck(self->sender, &SenderType)) {
        PyErr_SetString(PyExc_TypeError, "the slot has no Writer or Sender");
        return -1;
    }
    if (!PyBytes_CheckExact(payload)) { /* kept for NACKs: immutable bytes only */
        PyErr_SetString(PyExc_TypeError, "a payload is bytes");
        return -1;
    }
    Cached *cached = &self->cache[seq % CACHE_SIZE];
    cached->seq = seq;
    cached->marker = marker;
    cached->timestamp = timestamp;
    Py_INCREF(payload);
    Py_XSETREF(cached->payload, payload);
    Py_ssize_t length = PyBytes_GET_SIZE(payload);
    self->packets++;
    self->octets += (unsigned long long)length;
    return write_and_send((Writer *)self->writer, (Sender *)self->sender,
                          (int)self->payload_type, (int)marker, (unsigned int)seq, timestamp,
                          self->ssrc, (const unsigned char *)PyBytes_AS_STRING(payload),
                          length, send_time, level);
}

static PyObject *
SlotBase_send(SlotBase *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6 || !PyBytes_CheckExact(args[3])) {
        PyErr_SetString(PyExc_TypeError,
                        "send(marker, seq, timestamp, payload: bytes, audio_level, send_time)");
        return NULL;
    }
    unsigned long marker, seq, timestamp, send_time;
    int level;
    if (masked(args[0], 1, &marker) < 0 || masked(args[1], 0xFFFF, &seq) < 0 ||
        masked(args[2], 0xFFFFFFFFUL, &timestamp) < 0 || masked(args[5], 0xFFFFFF, &send_time) < 0 ||
        (level = level_of(args[4])) == -2)
        return NULL;
    if (slot_send(self, (long)marker, (long)seq, timestamp, args[3], level, send_time) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
SlotBase_cached(SlotBase *self, PyObject *arg)
{
    long seq = PyLong_AsLong(arg);
    if (seq == -1 && PyErr_Occurred())
        return NULL;
    Cached *cached = &self->cache[(seq & 0xFFFF) % CACHE_SIZE];
    if (cached->seq != seq || cached->payload == NULL)
        Py_RETURN_NONE;
    return Py_BuildValue("(lkO)", cached->marker, cached->timestamp, cached->payload);
}

static PyMethodDef SlotBase_methods[] = {
    {"send", (PyCFunction)(void (*)(void))SlotBase_send, METH_FASTCALL,
     "send(marker, seq, timestamp, payload, audio_level, send_time): keep for NACKs, count, "
     "write and send"},
    {"cached", (PyCFunction)SlotBase_cached, METH_O,
     "cached(seq) -> (marker, timestamp, payload) | None: a packet sent lately"},
    {NULL},
};

static PyMemberDef SlotBase_members[] = {
    {"writer", T_OBJECT, offsetof(SlotBase, writer), 0, NULL},
    {"_sender", T_OBJECT, offsetof(SlotBase, sender), 0, NULL},
    {"_payload_type", T_LONG, offsetof(SlotBase, payload_type), 0, NULL},
    {"_ssrc", T_ULONG, offsetof(SlotBase, ssrc), 0, NULL},
    {"next_seq", T_LONG, offsetof(SlotBase, next_seq), 0, NULL},
    {"last_timestamp", T_ULONG, offsetof(SlotBase, last_timestamp), 0, NULL},
    {"last_sent_at", T_DOUBLE, offsetof(SlotBase, last_sent_at), 0, NULL},
    {"packets", T_ULONGLONG, offsetof(SlotBase, packets), 0, NULL},
    {"octets", T_ULONGLONG, offsetof(SlotBase, octets), 0, NULL},
    {NULL},
};

static PyTypeObject SlotBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "media._fastpath.SlotBase",
    .tp_basicsize = sizeof(SlotBase),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The per-packet state of forwarding.Slot.",
    .tp_new = SlotBase_new,
    .tp_dealloc = (destructor)SlotBase_dealloc,
    .tp_traverse = (traverseproc)SlotBase_traverse,
    .tp_clear = (inquiry)SlotBase_clear,
    .tp_methods = SlotBase_methods,
    .tp_members = SlotBase_members,
};

/* -- LegBase: a track forwarded into a slot ---------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *slot, *track;
    char started;
    long first_upstream_seq, seq_offset;
    unsigned long ts_offset;
    unsigned long long forwarded, since_start;
} LegBase;

static PyTypeObject LegBaseType;
static PyObject *str_connected, *str_start, *str_deliver, *str_packet, *str_failed;

static int
LegBase_traverse(LegBase *self, visitproc visit, void *arg)
{
    Py_VISIT(self->slot);
    Py_VISIT(self->track);
    return 0;
}

static int
LegBase_clear(LegBase *self)
{
    Py_CLEAR(self->slot);
    Py_CLEAR(self->track);
    return 0;
}

static void
LegBase_dealloc(LegBase *self)
{
    PyObject_GC_UnTrack(self);
    LegBase_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
seq_newer(long a, long b)
{
    return a != b && ((a - b) & 0xFFFF) < 0x8000;
}

/* Rewrite the packet for this leg and send it (forwarder.Leg.forward). A leg not started
 * starts on a keyframe once its subscriber is connected (Python: ``connected``,
 * ``_start(packet, now)``; ``packet`` is the view, needed only then). */
static int
leg_forward(LegBase *self, const Header *h, PyObject *payload, PyObject *packet, int keyframe,
            double now, unsigned long send_time)
{
    if (!self->started) {
        if (!keyframe || packet == NULL)
            return 0;
        PyObject *connected = PyObject_GetAttr((PyObject *)self, str_connected);
        if (connected == NULL)
            return -1;
        int up = PyObject_IsTrue(connected);
        Py_DECREF(connected);
        if (up <= 0)
            return up;
        PyObject *when = PyFloat_FromDouble(now);
        if (when == NULL)
            return -1;
        PyObject *result = PyObject_CallMethodObjArgs((PyObject *)self, str_start, packet, when, NULL);
        Py_DECREF(when);
        if (result == NULL)
            return -1;
        Py_DECREF(result);
    }
    else if (self->since_start < CACHE_SIZE && seq_newer(self->first_upstream_seq, h->seq))
        return 0; /* older than what this leg started with (a late retransmission) */
    if (self->slot == NULL || !PyObject_TypeCheck(self->slot, &SlotBaseType)) {
        PyErr_SetString(PyExc_TypeError, "a leg's slot is a SlotBase");
        return -1;
    }
    SlotBase *slot = (SlotBase *)Py_NewRef(self->slot); /* sending may run Python */
    long seq = (h->seq + self->seq_offset) & 0xFFFF;
    unsigned long timestamp = (h->timestamp + self->ts_offset) & 0xFFFFFFFFUL;
    if (seq_newer((seq + 1) & 0xFFFF, slot->next_seq)) {
        slot->next_seq = (seq + 1) & 0xFFFF;
        slot->last_timestamp = timestamp;
        slot->last_sent_at = now;
    }
    self->forwarded++;
    self->since_start++;
    int result = slot_send(slot, h->marker, seq, timestamp, payload, h->level, send_time);
    Py_DECREF(slot);
    return result;
}

static PyObject *
LegBase_forward(LegBase *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyObject_TypeCheck(args[0], &RtpViewType)) {
        PyErr_SetString(PyExc_TypeError, "forward(packet: RtpView, keyframe, now, send_time)");
        return NULL;
    }
    RtpView *view = (RtpView *)args[0];
    Header h = {view->payload_type, view->marker, view->sequence_number, view->timestamp,
                view->ssrc, 0, 0, level_of(view->audio_level)};
    if (h.level == -2)
        return NULL;
    int keyframe = PyObject_IsTrue(args[1]);
    if (keyframe < 0)
        return NULL;
    double now = PyFloat_AsDouble(args[2]);
    if (now == -1.0 && PyErr_Occurred())
        return NULL;
    unsigned long send_time;
    if (masked(args[3], 0xFFFFFF, &send_time) < 0)
        return NULL;
    if (leg_forward(self, &h, view->payload, args[0], keyframe, now, send_time) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef LegBase_methods[] = {
    {"forward", (PyCFunction)(void (*)(void))LegBase_forward, METH_FASTCALL,
     "forward(packet, keyframe, now, send_time): rewrite for this leg and send; ``now`` "
     "(monotonic) and ``send_time`` (abs-send-time) are taken once per packet for all legs"},
    {NULL},
};

static PyMemberDef LegBase_members[] = {
    {"slot", T_OBJECT, offsetof(LegBase, slot), 0, NULL},
    {"track", T_OBJECT, offsetof(LegBase, track), 0, NULL},
    {"started", T_BOOL, offsetof(LegBase, started), 0, NULL},
    {"first_upstream_seq", T_LONG, offsetof(LegBase, first_upstream_seq), 0, NULL},
    {"seq_offset", T_LONG, offsetof(LegBase, seq_offset), 0, NULL},
    {"ts_offset", T_ULONG, offsetof(LegBase, ts_offset), 0, NULL},
    {"forwarded", T_ULONGLONG, offsetof(LegBase, forwarded), 0, NULL},
    {"since_start", T_ULONGLONG, offsetof(LegBase, since_start), 0, NULL},
    {NULL},
};

static PyTypeObject LegBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "media._fastpath.LegBase",
    .tp_basicsize = sizeof(LegBase),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The per-packet state and forwarding of forwarder.Leg.",
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)LegBase_dealloc,
    .tp_traverse = (traverseproc)LegBase_traverse,
    .tp_clear = (inquiry)LegBase_clear,
    .tp_methods = LegBase_methods,
    .tp_members = LegBase_members,
};

/* -- TrackBase: a published track, and its steady state forwarded in C ----------------- */

typedef struct {
    PyObject_HEAD
    PyObject *legs, *sinks, *stats; /* tuple of LegBase, list of sinks, Stats or None */
    unsigned long long packets, fast_packets;
    long highest, fast_pt;
    unsigned long fast_ssrc;
    char closed, gated, fast, is_video;
} TrackBase;

static PyTypeObject TrackBaseType;

static int
TrackBase_traverse(TrackBase *self, visitproc visit, void *arg)
{
    Py_VISIT(self->legs);
    Py_VISIT(self->sinks);
    Py_VISIT(self->stats);
    return 0;
}

static int
TrackBase_clear(TrackBase *self)
{
    Py_CLEAR(self->legs);
    Py_CLEAR(self->sinks);
    Py_CLEAR(self->stats);
    return 0;
}

static void
TrackBase_dealloc(TrackBase *self)
{
    PyObject_GC_UnTrack(self);
    TrackBase_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
TrackBase_call(TrackBase *self, PyObject *args, PyObject *kwds)
{
    PyObject *view;
    if (!PyArg_ParseTuple(args, "O", &view))
        return NULL;
    return PyObject_CallMethodOneArg((PyObject *)self, str_deliver, view);
}

/* Whether the packet is the track's steady state, which C forwards alone: the next media
 * packet (sequence number, for video) of the expected SSRC and payload type, every leg
 * started (Python sets ``_fast`` after each packet it handled). */
static int
track_is_steady(TrackBase *self, const Header *h)
{
    if (!self->fast || self->closed || self->gated || h->payload_type != self->fast_pt ||
        h->ssrc != self->fast_ssrc || self->stats == NULL ||
        !PyObject_TypeCheck(self->stats, &StatsType) || self->legs == NULL ||
        !PyTuple_Check(self->legs) || self->sinks == NULL || !PyList_Check(self->sinks))
        return 0;
    if (self->is_video && h->seq != ((self->highest + 1) & 0xFFFF))
        return 0;
    Py_ssize_t count = PyTuple_GET_SIZE(self->legs);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *leg = PyTuple_GET_ITEM(self->legs, i);
        if (!PyObject_TypeCheck(leg, &LegBaseType) || !((LegBase *)leg)->started)
            return 0;
    }
    return 1;
}

/* A packet (or one sink's call) failed: PublishedTrack._failed() counts and logs it, the
 * exception set being the one it sees handled; the track goes on. */
static int
track_failed(TrackBase *self)
{
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (traceback != NULL)
        PyException_SetTraceback(value, traceback);
    PyObject *previous = PyErr_GetHandledException();
    PyErr_SetHandledException(value);
    PyObject *result = PyObject_CallMethodNoArgs((PyObject *)self, str_failed);
    PyErr_SetHandledException(previous);
    Py_XDECREF(previous);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
    if (result == NULL)
        return -1;
    Py_DECREF(result);
    return 0;
}

/* PublishedTrack._on_packet for a steady packet: receiver statistics, count, sinks,
 * then every leg. */
static int
track_forward(TrackBase *self, const unsigned char *buffer, const Header *h)
{
    double now = now_of(CLOCK_MONOTONIC), wall = now_of(CLOCK_REALTIME);
    stats_add((Stats *)self->stats, h->seq, h->timestamp, wall);
    self->packets++;
    self->fast_packets++;
    if (self->is_video)
        self->highest = h->seq;
    PyObject *payload =
        PyBytes_FromStringAndSize((const char *)buffer + h->payload, h->payload_length);
    if (payload == NULL)
        return -1;
    int result = 0;
    if (PyList_GET_SIZE(self->sinks)) {
        PyObject *sinks = PySequence_Tuple(self->sinks);
        PyObject *view = sinks ? view_of(h, payload) : NULL;
        PyObject *arrival = view ? PyFloat_FromDouble(wall) : NULL;
        result = arrival ? 0 : -1;
        for (Py_ssize_t i = 0; arrival && i < PyTuple_GET_SIZE(sinks); i++) {
            PyObject *r = PyObject_CallMethodObjArgs(PyTuple_GET_ITEM(sinks, i), str_packet,
                                                     view, arrival, NULL);
            if (r == NULL && track_failed(self) < 0) { /* a failing sink costs no leg */
                result = -1;
                break;
            }
            Py_XDECREF(r);
        }
        Py_XDECREF(arrival);
        Py_XDECREF(view);
        Py_XDECREF(sinks);
    }
    unsigned long send_time =
        (unsigned long)(long long)((wall + NTP_EPOCH_OFFSET) * 262144.0) & 0xFFFFFFUL;
    PyObject *legs = self->legs; /* read after the sinks, as Python did; held: legs run Python */
    if (legs == NULL || !PyTuple_Check(legs)) {
        Py_DECREF(payload);
        return result;
    }
    Py_INCREF(legs);
    for (Py_ssize_t i = 0; result == 0 && i < PyTuple_GET_SIZE(legs); i++) {
        PyObject *leg = PyTuple_GET_ITEM(legs, i);
        /* a leg a sink added waits (no view); a failing leg is counted, the next still
         * gets the packet */
        if (PyObject_TypeCheck(leg, &LegBaseType) &&
            leg_forward((LegBase *)leg, h, payload, NULL, 1, now, send_time) < 0)
            result = track_failed(self);
    }
    Py_DECREF(legs);
    Py_DECREF(payload);
    return result;
}

static PyMemberDef TrackBase_members[] = {
    {"_legs", T_OBJECT, offsetof(TrackBase, legs), 0, "legs as a tuple, for each packet"},
    {"sinks", T_OBJECT, offsetof(TrackBase, sinks), 0, NULL},
    {"_stats", T_OBJECT, offsetof(TrackBase, stats), 0, "Stats of the media SSRC"},
    {"packets", T_ULONGLONG, offsetof(TrackBase, packets), 0, NULL},
    {"fast_packets", T_ULONGLONG, offsetof(TrackBase, fast_packets), READONLY,
     "packets forwarded in C alone (the steady state)"},
    {"_highest", T_LONG, offsetof(TrackBase, highest), 0, NULL},
    {"_fast_pt", T_LONG, offsetof(TrackBase, fast_pt), 0, NULL},
    {"_fast_ssrc", T_ULONG, offsetof(TrackBase, fast_ssrc), 0, NULL},
    {"closed", T_BOOL, offsetof(TrackBase, closed), 0, NULL},
    {"_gated", T_BOOL, offsetof(TrackBase, gated), 0, NULL},
    {"_fast", T_BOOL, offsetof(TrackBase, fast), 0, NULL},
    {"_is_video", T_BOOL, offsetof(TrackBase, is_video), 0, NULL},
    {NULL},
};

static PyTypeObject TrackBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "media._fastpath.TrackBase",
    .tp_basicsize = sizeof(TrackBase),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The per-packet state of forwarder.PublishedTrack; calling it delivers a view.",
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)TrackBase_dealloc,
    .tp_traverse = (traverseproc)TrackBase_traverse,
    .tp_clear = (inquiry)TrackBase_clear,
    .tp_call = (ternaryfunc)TrackBase_call,
    .tp_members = TrackBase_members,
};

/* -- Ingest ------------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *session;
    PyObject *routes; /* dict: SSRC -> (tap, audio level extension ID) */
    PyObject *learn;  /* bytes -> (tap, ID) or None: routes an SSRC not seen yet */
    void *ctx;
} Ingest;

static int
Ingest_traverse(Ingest *self, visitproc visit, void *arg)
{
    Py_VISIT(self->session);
    Py_VISIT(self->routes);
    Py_VISIT(self->learn);
    return 0;
}

static int
Ingest_clear(Ingest *self)
{
    Py_CLEAR(self->session);
    Py_CLEAR(self->routes);
    Py_CLEAR(self->learn);
    return 0;
}

static void
Ingest_dealloc(Ingest *self)
{
    PyObject_GC_UnTrack(self);
    Ingest_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
Ingest_init(Ingest *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"session", "routes", "learn", NULL};
    PyObject *session, *routes, *learn;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO!O", kwlist, &session, &PyDict_Type,
                                     &routes, &learn))
        return -1;
    void *ctx = session_context(session);
    if (ctx == NULL)
        return -1;
    if (!PyCallable_Check(learn)) {
        PyErr_SetString(PyExc_TypeError, "learn must be callable");
        return -1;
    }
    Ingest_clear(self);
    self->session = Py_NewRef(session);
    self->routes = Py_NewRef(routes);
    self->learn = Py_NewRef(learn);
    self->ctx = ctx;
    return 0;
}

static PyObject *
Ingest_call(Ingest *self, PyObject *args, PyObject *kwds)
{
    Py_buffer data;
    _Alignas(16) unsigned char buffer[MAX_PACKET]; /* libsrtp reads words */
    if (kwds != NULL && PyDict_GET_SIZE(kwds)) {
        PyErr_SetString(PyExc_TypeError, "Ingest takes no keyword arguments");
        return NULL;
    }
    if (self->routes == NULL) {
        PyErr_SetString(PyExc_TypeError, "Ingest not initialised");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*", &data))
        return NULL;
    if (data.len > MAX_PACKET || data.len < 12) {
        PyBuffer_Release(&data);
        Py_RETURN_NONE;
    }
    int length = (int)data.len;
    memcpy(buffer, data.buf, data.len);
    PyBuffer_Release(&data);
    if (srtp_unprotect_fn(self->ctx, buffer, &length) != 0 || length < 12)
        Py_RETURN_NONE; /* forged, replayed or not ours */
    unsigned long ssrc = (unsigned long)buffer[8] << 24 | buffer[9] << 16 | buffer[10] << 8 |
                         buffer[11];
    PyObject *key = PyLong_FromUnsignedLong(ssrc);
    if (key == NULL)
        return NULL;
    PyObject *route = PyDict_GetItemWithError(self->routes, key); /* borrowed */
    Py_DECREF(key);
    if (route != NULL)
        Py_INCREF(route);
    else if (PyErr_Occurred())
        return NULL;
    else {
        PyObject *plain = PyBytes_FromStringAndSize((const char *)buffer, length);
        if (plain == NULL)
            return NULL;
        route = PyObject_CallOneArg(self->learn, plain);
        Py_DECREF(plain);
        if (route == NULL)
            return NULL;
    }
    if (route == Py_None) {
        Py_DECREF(route);
        Py_RETURN_NONE;
    }
    if (!PyTuple_Check(route) || PyTuple_GET_SIZE(route) != 2) {
        Py_DECREF(route);
        PyErr_SetString(PyExc_TypeError, "a route is (tap, audio level ID)");
        return NULL;
    }
    PyObject *result = NULL, *tap = PyTuple_GET_ITEM(route, 0);
    long audio_id = PyLong_AsLong(PyTuple_GET_ITEM(route, 1));
    Header h;
    if (audio_id == -1 && PyErr_Occurred())
        ;
    else if (!read_header(buffer, length, (int)audio_id, &h))
        result = Py_NewRef(Py_None);
    else if (PyObject_TypeCheck(tap, &TrackBaseType) && track_is_steady((TrackBase *)tap, &h)) {
        if (track_forward((TrackBase *)tap, buffer, &h) == 0 || track_failed((TrackBase *)tap) == 0)
            result = Py_NewRef(Py_None);
    }
    else {
        PyObject *payload =
            PyBytes_FromStringAndSize((const char *)buffer + h.payload, h.payload_length);
        PyObject *view = payload ? view_of(&h, payload) : NULL;
        Py_XDECREF(payload);
        if (view != NULL) {
            result = PyObject_CallOneArg(tap, view);
            Py_DECREF(view);
        }
    }
    Py_DECREF(route);
    return result;
}

static PyTypeObject IngestType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "media._fastpath.Ingest",
    .tp_basicsize = sizeof(Ingest),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Ingest(session, routes, learn): unprotect with a pylibsrtp Session, route, parse.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Ingest_init,
    .tp_dealloc = (destructor)Ingest_dealloc,
    .tp_traverse = (traverseproc)Ingest_traverse,
    .tp_clear = (inquiry)Ingest_clear,
    .tp_call = (ternaryfunc)Ingest_call,
};

/* -- module ------------------------------------------------------------------------------ */

static PyMethodDef module_methods[] = {
    {"parse", (PyCFunction)(void (*)(void))parse, METH_FASTCALL,
     "parse(data, audio_level_id=0) -> RtpView | None"},
    {NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "media._fastpath", "Forwarding's per-packet path in C.", -1,
    module_methods,
};

PyMODINIT_FUNC
PyInit__fastpath(void)
{
    PyObject *module;
    if (PyType_Ready(&SenderType) < 0 ||
        PyType_Ready(&WriterType) < 0 || PyType_Ready(&RtpViewType) < 0 ||
        PyType_Ready(&IngestType) < 0 || PyType_Ready(&StatsType) < 0 ||
        PyType_Ready(&SlotBaseType) < 0 || PyType_Ready(&LegBaseType) < 0 ||
        PyType_Ready(&TrackBaseType) < 0)
        return NULL;
    if (!(str_state = PyUnicode_InternFromString("_state")) ||
        !(str_is_closing = PyUnicode_InternFromString("is_closing")) ||
        !(str_connected = PyUnicode_InternFromString("connected")) ||
        !(str_start = PyUnicode_InternFromString("_start")) ||
        !(str_deliver = PyUnicode_InternFromString("deliver")) ||
        !(str_packet = PyUnicode_InternFromString("packet")) ||
        !(str_failed = PyUnicode_InternFromString("_failed")) || !(one = PyLong_FromLong(1)) ||
        !(zero = PyLong_FromLong(0)) ||
        bind_libsrtp() < 0)
        return NULL;
    module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObjectRef(module, "Sender", (PyObject *)&SenderType) < 0 ||
        PyModule_AddObjectRef(module, "Writer", (PyObject *)&WriterType) < 0 ||
        PyModule_AddObjectRef(module, "RtpView", (PyObject *)&RtpViewType) < 0 ||
        PyModule_AddObjectRef(module, "Ingest", (PyObject *)&IngestType) < 0 ||
        PyModule_AddObjectRef(module, "Stats", (PyObject *)&StatsType) < 0 ||
        PyModule_AddObjectRef(module, "SlotBase", (PyObject *)&SlotBaseType) < 0 ||
        PyModule_AddObjectRef(module, "LegBase", (PyObject *)&LegBaseType) < 0 ||
        PyModule_AddObjectRef(module, "TrackBase", (PyObject *)&TrackBaseType) < 0 ||
        PyModule_AddIntConstant(module, "CACHE_SIZE", CACHE_SIZE) < 0 ||
        PyModule_AddStringConstant(module, "SRTP_SIGNATURE", SRTP_SIGNATURE) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
