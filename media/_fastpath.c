/* The per-packet send path of forwarding in C (issue 10): writing an RTP header with its
 * one-byte extensions, SRTP protection and sendto(2), without a Python frame per step.
 *
 *   Transform  libsrtp's protect/unprotect (either direction, RTP or RTCP) on one
 *              pylibsrtp Session, called through the function's address (no cffi call,
 *              no copy into a cffi buffer): bytes in, bytes out.
 *   Sender     protects plaintext RTP/RTCP and sends it on the nominated ICE pair's host
 *              socket; Python resolves a pair once (media/hooks.py rtp_sender).
 *   Writer     one outgoing sender's header layout (MID, abs-send-time, audio level):
 *              write() gives bytes, send() writes into a stack buffer and sends through a
 *              Sender.
 *
 * No libsrtp is linked: Python hands over the addresses of pylibsrtp's own functions and
 * session (cffi), and the Session object is kept referenced for as long as they are used.
 * Everything runs on the event loop's thread with the GIL held.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_PACKET 1500      /* protected packet, as pylibsrtp's buffer: longer is refused */
#define RTP_TRAILER 144      /* SRTP_MAX_TRAILER_LEN */
#define RTCP_TRAILER 148     /* SRTP_MAX_SRTCP_TRAILER_LEN */
#define MAX_HEAD 40          /* 12 header + 4 extension head + MID (<= 17) + 4 + 2 + pad */

typedef int (*srtp_fn)(void *ctx, void *packet, int *length);

static int
is_rtcp(const unsigned char *data, Py_ssize_t length)
{
    /* aiortc's is_rtcp: second byte 192..208 */
    return length >= 2 && data[1] >= 192 && data[1] <= 208;
}

/* -- Transform --------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *session; /* keeps ctx alive */
    srtp_fn func;
    void *ctx;
    Py_ssize_t trailer;
} Transform;

static int
Transform_init(Transform *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"session", "func", "ctx", "trailer", NULL};
    PyObject *session;
    unsigned long long func, ctx;
    Py_ssize_t trailer;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OKKn", kwlist, &session, &func, &ctx,
                                     &trailer))
        return -1;
    if (!func || !ctx || trailer < 0 || trailer > RTCP_TRAILER) {
        PyErr_SetString(PyExc_ValueError, "bad SRTP function, context or trailer");
        return -1;
    }
    Py_INCREF(session);
    Py_XSETREF(self->session, session);
    self->func = (srtp_fn)(uintptr_t)func;
    self->ctx = (void *)(uintptr_t)ctx;
    self->trailer = trailer;
    return 0;
}

static void
Transform_dealloc(Transform *self)
{
    Py_XDECREF(self->session);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *SrtpError; /* pylibsrtp.Error */

static PyObject *
Transform_call(Transform *self, PyObject *args, PyObject *kwds)
{
    Py_buffer view;
    unsigned char buffer[MAX_PACKET];
    if (kwds != NULL && PyDict_GET_SIZE(kwds)) {
        PyErr_SetString(PyExc_TypeError, "Transform takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*", &view))
        return NULL;
    if (view.len > MAX_PACKET - self->trailer) {
        PyBuffer_Release(&view);
        PyErr_SetString(SrtpError, "packet is too long");
        return NULL;
    }
    int length = (int)view.len;
    memcpy(buffer, view.buf, view.len);
    PyBuffer_Release(&view);
    int code = self->func(self->ctx, buffer, &length);
    if (code) {
        PyErr_Format(SrtpError, "libsrtp error %d", code);
        return NULL;
    }
    return PyBytes_FromStringAndSize((const char *)buffer, length);
}

static PyTypeObject TransformType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "media._fastpath.Transform",
    .tp_basicsize = sizeof(Transform),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Transform(session, func, ctx, trailer): libsrtp's func on one session.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Transform_init,
    .tp_dealloc = (destructor)Transform_dealloc,
    .tp_call = (ternaryfunc)Transform_call,
};

/* -- Sender ------------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *dtls;      /* aiortc's RTCDtlsTransport */
    PyObject *connected; /* DtlsState.CONNECTED */
    PyObject *nominated; /* aioice Connection._nominated: component -> pair */
    PyObject *resolve;   /* pair -> (udp transport, fd, host, port, session, rtp ctx fn,
                            rtcp fn, ctx) or None (not a host pair) */
    PyObject *later;     /* bytes -> None: aiortc's own send, for a pair that is not ours */
    PyObject *pair;      /* the pair resolved last (NULL: none yet) */
    PyObject *udp;       /* its asyncio transport (NULL: send through later) */
    PyObject *session;
    int fd;
    struct sockaddr_storage address;
    socklen_t address_length;
    srtp_fn protect, protect_rtcp;
    void *ctx;
    unsigned long long sent, dropped;
} Sender;

static PyObject *str_state, *str_is_closing, *one;

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
    unsigned long long protect, protect_rtcp, ctx;
    if (!PyArg_ParseTuple(route, "OisiOKKK", &udp, &fd, &host, &port, &session, &protect,
                          &protect_rtcp, &ctx)) {
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
    else {
        PyErr_Format(PyExc_ValueError, "not an IP address: %s", host);
        Py_DECREF(route);
        Py_CLEAR(self->pair);
        return -1;
    }
    Py_INCREF(udp);
    self->udp = udp;
    Py_INCREF(session);
    self->session = session;
    self->fd = fd;
    self->protect = (srtp_fn)(uintptr_t)protect;
    self->protect_rtcp = (srtp_fn)(uintptr_t)protect_rtcp;
    self->ctx = (void *)(uintptr_t)ctx;
    Py_DECREF(route);
    return 0;
}

/* Protect ``buffer`` (``length`` bytes of plaintext in MAX_PACKET bytes) and send it. 0 when sent or dropped as the Python version drops (not connected, no pair,
 * not protectable, a full socket); -1 with an exception set. */
static int
Sender_send_buffer(Sender *self, unsigned char *buffer, int length)
{
    PyObject *state = PyObject_GetAttr(self->dtls, str_state);
    if (state == NULL)
        return -1;
    Py_DECREF(state); /* only compared by identity */
    if (state != self->connected)
        return 0;
    PyObject *pair = PyDict_GetItemWithError(self->nominated, one);
    if (pair == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (pair != self->pair && Sender_route(self, pair) < 0)
        return -1;
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
    if ((rtcp ? self->protect_rtcp : self->protect)(self->ctx, buffer, &length) != 0) {
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
    unsigned char buffer[MAX_PACKET];
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

static int
parse_fields(PyObject *const *args, Py_ssize_t nargs, Fields *f)
{
    if (nargs < 7 || nargs > 8) {
        PyErr_SetString(PyExc_TypeError,
                        "expected payload_type, marker, sequence_number, timestamp, ssrc, "
                        "payload, send_time[, audio_level]");
        return -1;
    }
    f->payload_type = PyLong_AsLong(args[0]);
    f->marker = PyLong_AsLong(args[1]);
    f->seq = (unsigned int)PyLong_AsUnsignedLong(args[2]) & 0xFFFF;
    f->timestamp = PyLong_AsUnsignedLong(args[3]) & 0xFFFFFFFFUL;
    f->ssrc = PyLong_AsUnsignedLong(args[4]) & 0xFFFFFFFFUL;
    f->send_time = PyLong_AsUnsignedLong(args[6]) & 0xFFFFFFUL;
    f->level = -1;
    if (PyErr_Occurred())
        return -1;
    if (nargs == 8 && args[7] != Py_None) {
        PyObject *level = args[7];
        if (!PyTuple_Check(level) || PyTuple_GET_SIZE(level) != 2) {
            PyErr_SetString(PyExc_TypeError, "audio_level: None or (voice, level)");
            return -1;
        }
        int voice = PyObject_IsTrue(PyTuple_GET_ITEM(level, 0));
        long value = PyLong_AsLong(PyTuple_GET_ITEM(level, 1));
        if (voice < 0 || (value == -1 && PyErr_Occurred()))
            return -1;
        f->level = (voice ? 0x80 : 0) | (int)(value & 0x7F);
    }
    return PyObject_GetBuffer(args[5], &f->payload, PyBUF_SIMPLE);
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
    unsigned char out[MAX_PACKET];
    if (nargs < 1 || !PyObject_TypeCheck(args[0], &SenderType)) {
        PyErr_SetString(PyExc_TypeError, "send(sender, ...): a Sender first");
        return NULL;
    }
    if (parse_fields(args + 1, nargs - 1, &f) < 0)
        return NULL;
    if (f.payload.len > MAX_PACKET - MAX_HEAD) { /* not protectable: nothing is sent */
        PyBuffer_Release(&f.payload);
        ((Sender *)args[0])->dropped++;
        Py_RETURN_NONE;
    }
    int length = write_packet(self, out, f.payload_type, f.marker, f.seq, f.timestamp, f.ssrc,
                              f.payload.buf, f.payload.len, f.send_time, f.level);
    PyBuffer_Release(&f.payload);
    if (Sender_send_buffer((Sender *)args[0], out, length) < 0)
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

/* The audio level element ``wanted`` in the extension block [pos, end): >= 0 the level
 * byte, -1 none. */
static int
find_audio_level(const unsigned char *data, Py_ssize_t pos, Py_ssize_t end, int wanted,
                 int two_byte)
{
    while (pos < end) {
        int element = data[pos], ident, length;
        Py_ssize_t start;
        if (element == 0) { /* padding */
            pos++;
            continue;
        }
        if (two_byte) { /* ID byte, length byte, data */
            if (pos + 1 >= end)
                return -1;
            ident = element;
            length = data[pos + 1];
            start = pos + 2;
        }
        else { /* ID and length - 1 in one byte, data */
            ident = element >> 4;
            length = (element & 0x0F) + 1;
            start = pos + 1;
        }
        if (ident == wanted)
            return (length < 1 || start >= end) ? -1 : data[start];
        pos = start + length;
    }
    return -1;
}

static PyObject *
audio_level_tuple(int level)
{
    if (level < 0)
        Py_RETURN_NONE;
    return Py_BuildValue("(Oi)", (level & 0x80) ? Py_True : Py_False, level & 0x7F);
}

/* The RtpView of ``data``; Py_None (a new reference) if it is not a well-formed packet. */
static PyObject *
parse_packet(const unsigned char *data, Py_ssize_t size, int audio_id)
{
    if (size < 12 || data[0] >> 6 != 2)
        Py_RETURN_NONE;
    int first = data[0], second = data[1], level = -1;
    Py_ssize_t pos = 12 + 4 * (first & 0x0F);
    if (pos > size)
        Py_RETURN_NONE;
    if (first & 0x10) {
        if (pos + 4 > size)
            Py_RETURN_NONE;
        int profile = data[pos] << 8 | data[pos + 1];
        Py_ssize_t end = pos + 4 + 4 * (data[pos + 2] << 8 | data[pos + 3]);
        pos += 4;
        if (end > size)
            Py_RETURN_NONE;
        if (audio_id && profile == 0xBEDE)
            level = find_audio_level(data, pos, end, audio_id, 0);
        else if (audio_id && profile >> 4 == 0x100)
            level = find_audio_level(data, pos, end, audio_id, 1);
        pos = end;
    }
    if (first & 0x20) {
        int padding = data[size - 1];
        if (padding == 0 || pos + padding > size)
            Py_RETURN_NONE;
        size -= padding;
    }
    PyObject *payload = PyBytes_FromStringAndSize((const char *)data + pos, size - pos);
    if (payload == NULL)
        return NULL;
    PyObject *audio_level = audio_level_tuple(level);
    if (audio_level == NULL) {
        Py_DECREF(payload);
        return NULL;
    }
    PyObject *view = RtpView_make(
        second & 0x7F, second >> 7, data[2] << 8 | data[3],
        (unsigned long)data[4] << 24 | data[5] << 16 | data[6] << 8 | data[7],
        (unsigned long)data[8] << 24 | data[9] << 16 | data[10] << 8 | data[11], payload,
        audio_level);
    Py_DECREF(payload);
    Py_DECREF(audio_level);
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

/* -- Ingest ------------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *session;
    PyObject *routes; /* dict: SSRC -> (tap, audio level extension ID) */
    PyObject *learn;  /* bytes -> (tap, ID) or None: routes an SSRC not seen yet */
    srtp_fn unprotect;
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
    static char *kwlist[] = {"session", "unprotect", "ctx", "routes", "learn", NULL};
    PyObject *session, *routes, *learn;
    unsigned long long unprotect, ctx;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OKKO!O", kwlist, &session, &unprotect, &ctx,
                                     &PyDict_Type, &routes, &learn))
        return -1;
    Ingest_clear(self);
    self->session = Py_NewRef(session);
    self->routes = Py_NewRef(routes);
    self->learn = Py_NewRef(learn);
    self->unprotect = (srtp_fn)(uintptr_t)unprotect;
    self->ctx = (void *)(uintptr_t)ctx;
    return 0;
}

static PyObject *
Ingest_call(Ingest *self, PyObject *args, PyObject *kwds)
{
    Py_buffer data;
    unsigned char buffer[MAX_PACKET];
    if (kwds != NULL && PyDict_GET_SIZE(kwds)) {
        PyErr_SetString(PyExc_TypeError, "Ingest takes no keyword arguments");
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
    if (self->unprotect(self->ctx, buffer, &length) != 0 || length < 12)
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
    PyObject *result = NULL;
    long audio_id = PyLong_AsLong(PyTuple_GET_ITEM(route, 1));
    if (!(audio_id == -1 && PyErr_Occurred())) {
        PyObject *view = parse_packet(buffer, length, (int)audio_id);
        if (view == Py_None)
            result = view;
        else if (view != NULL) {
            result = PyObject_CallOneArg(PyTuple_GET_ITEM(route, 0), view);
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
    .tp_doc = "Ingest(session, unprotect, ctx, routes, learn): unprotect, route, parse.",
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
    if (PyType_Ready(&TransformType) < 0 || PyType_Ready(&SenderType) < 0 ||
        PyType_Ready(&WriterType) < 0 || PyType_Ready(&RtpViewType) < 0 ||
        PyType_Ready(&IngestType) < 0)
        return NULL;
    str_state = PyUnicode_InternFromString("_state");
    str_is_closing = PyUnicode_InternFromString("is_closing");
    one = PyLong_FromLong(1);
    PyObject *pylibsrtp = PyImport_ImportModule("pylibsrtp");
    if (pylibsrtp == NULL)
        return NULL;
    SrtpError = PyObject_GetAttrString(pylibsrtp, "Error");
    Py_DECREF(pylibsrtp);
    if (SrtpError == NULL)
        return NULL;
    module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObjectRef(module, "Transform", (PyObject *)&TransformType) < 0 ||
        PyModule_AddObjectRef(module, "Sender", (PyObject *)&SenderType) < 0 ||
        PyModule_AddObjectRef(module, "Writer", (PyObject *)&WriterType) < 0 ||
        PyModule_AddObjectRef(module, "RtpView", (PyObject *)&RtpViewType) < 0 ||
        PyModule_AddObjectRef(module, "Ingest", (PyObject *)&IngestType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
