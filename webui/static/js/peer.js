// One RTCPeerConnection per connection to the session: sendonly transceivers for what
// this side publishes, then a fixed set of recvonly "slots" the server fills with the
// others' tracks (it says which in "slots" messages). No trickle ICE: the offer goes
// out once gathering is complete. A reconnect builds a new one (no ICE restart).

export const VIDEO_SLOTS = 4;
export const AUDIO_SLOTS = 3;
const GATHER_LIMIT_MS = 5000;
const MAX_BITRATE = { face: 800_000, document: 2_500_000 };

function gathered(pc) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") {
      resolve();
      return;
    }
    const timer = setTimeout(done, GATHER_LIMIT_MS);
    function done() {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === "complete") done();
    }
    pc.addEventListener("icegatheringstatechange", check);
  });
}

async function keepResolution(sender) {
  // The document camera is for reading: drop frames, never pixels.
  const parameters = sender.getParameters();
  parameters.degradationPreference = "maintain-resolution";
  try {
    await sender.setParameters(parameters);
  } catch (error) {
    console.warn("degradationPreference not applied", error);
  }
}

/**
 * Build a connection publishing ``tracks`` (Map source → track) and make an offer.
 * Returns { pc, sdp, publish: {mid: source}, slots: [{mid, kind, receiver}] }.
 */
export async function makeOffer(iceServers, tracks) {
  const pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
  const sending = [];
  for (const [source, track] of tracks) {
    const init = { direction: "sendonly" };
    if (track.kind === "video") init.sendEncodings = [{ maxBitrate: MAX_BITRATE[source] }];
    const transceiver = pc.addTransceiver(track, init);
    if (source === "document") await keepResolution(transceiver.sender);
    sending.push([source, transceiver]);
  }
  const receiving = [];
  for (let i = 0; i < VIDEO_SLOTS; i++) {
    receiving.push(pc.addTransceiver("video", { direction: "recvonly" }));
  }
  for (let i = 0; i < AUDIO_SLOTS; i++) {
    receiving.push(pc.addTransceiver("audio", { direction: "recvonly" }));
  }
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  // mids exist only after setLocalDescription
  const publish = Object.fromEntries(sending.map(([source, t]) => [t.mid, source]));
  const slots = receiving.map((t) => ({ mid: t.mid, kind: t.receiver.track.kind, receiver: t.receiver }));
  return { pc, sdp: pc.localDescription.sdp, publish, slots };
}
