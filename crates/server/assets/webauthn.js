// Wardgate's only script: the WebAuthn ceremonies the browser must run itself. Everything
// else works without JavaScript. It talks to the same JSON API as any other client.
"use strict";
(function () {
  const b64uToBuf = (s) => {
    const pad = "=".repeat((4 - (s.length % 4)) % 4);
    const bin = atob((s + pad).replace(/-/g, "+").replace(/_/g, "/"));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0)).buffer;
  };
  const bufToB64u = (buf) => {
    let bin = "";
    for (const b of new Uint8Array(buf)) bin += String.fromCharCode(b);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  };

  // `csrf` only inside a session (the account page): the session's token, which the API
  // asks for on every change.
  async function post(path, body, csrf) {
    const headers = { "Content-Type": "application/json" };
    if (csrf) headers["X-CSRF-Token"] = csrf;
    const resp = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers,
      body: JSON.stringify(body || {}),
    });
    const data = resp.status === 204 ? {} : await resp.json();
    if (!resp.ok) throw new Error(data.detail || data.title || "The request failed");
    return data;
  }

  function showError(e) {
    const el = document.getElementById("webauthn-error");
    if (!el) return;
    el.textContent = e.name === "NotAllowedError" ? "The security key step was cancelled or timed out." : e.message;
    el.classList.remove("hidden");
  }

  async function assertion(options) {
    const pk = options.publicKey;
    pk.challenge = b64uToBuf(pk.challenge);
    (pk.allowCredentials || []).forEach((c) => (c.id = b64uToBuf(c.id)));
    const cred = await navigator.credentials.get({ publicKey: pk });
    return {
      id: cred.id,
      rawId: bufToB64u(cred.rawId),
      type: cred.type,
      extensions: {},
      response: {
        authenticatorData: bufToB64u(cred.response.authenticatorData),
        clientDataJSON: bufToB64u(cred.response.clientDataJSON),
        signature: bufToB64u(cred.response.signature),
        userHandle: cred.response.userHandle ? bufToB64u(cred.response.userHandle) : null,
      },
    };
  }

  async function login(button) {
    // A step-up names the person: the server then accepts only a key of theirs.
    const start = await post("/api/v1/login", button.dataset.username ? { username: button.dataset.username } : {});
    const options = await post("/api/v1/login/webauthn/challenge", { flow: start.flow });
    const credential = await assertion(options);
    const done = await post("/api/v1/login/webauthn", { flow: start.flow, credential });
    window.location.assign(done.next || "/account");
  }

  async function second() {
    const options = await post("/api/v1/login/webauthn/challenge", {});
    const credential = await assertion(options);
    const done = await post("/api/v1/login/webauthn", { credential });
    window.location.assign(done.next || "/account");
  }

  async function register() {
    const options = await post("/api/v1/enroll/webauthn/challenge", {});
    const pk = options.publicKey;
    pk.challenge = b64uToBuf(pk.challenge);
    pk.user.id = b64uToBuf(pk.user.id);
    (pk.excludeCredentials || []).forEach((c) => (c.id = b64uToBuf(c.id)));
    const cred = await navigator.credentials.create({ publicKey: pk });
    const credential = {
      id: cred.id,
      rawId: bufToB64u(cred.rawId),
      type: cred.type,
      extensions: {},
      response: {
        attestationObject: bufToB64u(cred.response.attestationObject),
        clientDataJSON: bufToB64u(cred.response.clientDataJSON),
      },
    };
    await post("/api/v1/enroll/webauthn", { credential });
    window.location.assign("/enroll/steps");
  }

  // Replacing a lost factor: another key of the person's confirms it (the server offers
  // only those), then the page continues into adding the replacement.
  async function replace(button) {
    const path = `/api/v1/me/factors/${encodeURIComponent(button.dataset.factor)}/replace`;
    const csrf = button.dataset.csrf;
    const challenge = await post(`${path}/challenge`, {}, csrf);
    const credential = await assertion(challenge);
    await post(path, { flow: challenge.flow, credential }, csrf);
    window.location.assign("/enroll/steps");
  }

  const actions = { login, second, register, replace };
  document.querySelectorAll("[data-webauthn]").forEach((button) => {
    if (!window.PublicKeyCredential) {
      button.disabled = true;
      button.title = "This browser does not support security keys";
      return;
    }
    button.addEventListener("click", () => {
      button.disabled = true;
      actions[button.dataset.webauthn](button).catch((e) => {
        button.disabled = false;
        showError(e);
      });
    });
  });
})();
