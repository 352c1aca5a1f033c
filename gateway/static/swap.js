/*! dni-gateway swap.js: dynamic number insertion for a customer's website. Apache-2.0.
 * <script async src="https://GATEWAY/swap.js" data-site="KEY"></script>
 * data-*: site (required), consent="required", ping (s), timeout (ms), days (cookie life).
 * window.dni: swap(root), consent(bool), ready (Promise of the answer or null), push([name,
 * ...args]) so calls can be queued as `(window.dni = window.dni || []).push([...])` early.
 * Plain ES2017, no dependencies, served as written. README "Website snippet" has the rest. */
(() => {
  'use strict';
  const w = window, d = document, root = d.documentElement, queued = w.dni;
  if (queued && queued.ready) return; // included twice: the first copy owns the page
  const me = d.currentScript || d.querySelector('script[data-site]');
  const opt = (k, dflt) => +(me && me.getAttribute('data-' + k)) || dflt;
  const site = me && me.getAttribute('data-site');
  const PING_S = opt('ping', 20); // 15-30 s keeps an open tab's session alive at low cost
  const BUDGET_MS = opt('timeout', 1500); // past this the page keeps its own numbers
  const DAYS = opt('days', 30); // visitor cookie life: the site's stickiness window
  const KEY = 'dni_v';
  // Never swapped: code, form fields, editors and opted-out subtrees.
  const NO = 'script,style,noscript,textarea,select,template,iframe,[contenteditable],' +
    '[data-dni-noswap]';
  // ITU country codes are prefix-free: 1 and 7 take one digit, these two, the rest three.
  const CC = /^(?:[17]|2[07]|3[0-469]|4[013-9]|5[1-8]|6[0-6]|8[1246]|9[0-58]|\d{3})/;
  const SEP = '[\\s()./\\u2010-\\u2015-]{0,2}'; // what pages put between digits
  let consented = me && me.getAttribute('data-consent') !== 'required';
  let started = false, rules = [], session = null, timer = 0, seen = location.href, settle;
  const ready = new Promise((r) => { settle = r; });

  const api = (path) => new URL(path, me.src).href; // the gateway is where swap.js came from
  const release = () => root.classList.remove('dni-pending'); // the anti-flicker CSS hook

  const getId = () => {
    const m = d.cookie.match(/(?:^|; )dni_v=([^;]+)/);
    if (m) return decodeURIComponent(m[1]);
    try { return localStorage.getItem(KEY); } catch (e) { return null; }
  };
  const setId = (v) => { // '' forgets the visitor
    d.cookie = KEY + '=' + encodeURIComponent(v) + ';path=/;SameSite=Lax;max-age=' +
      (v ? DAYS * 86400 : 0) + (location.protocol === 'https:' ? ';Secure' : '');
    try { v ? localStorage.setItem(KEY, v) : localStorage.removeItem(KEY); } catch (e) { /**/ }
  };

  const split = (e164) => {
    const digits = e164.replace(/\D/g, ''), cc = digits.match(CC)[0];
    return [cc, digits.slice(cc.length)];
  };
  // One rule per swap target: its digits with any separators between them, an optional
  // country code (+1, 001, 1) and, outside North America, an optional trunk 0 or (0).
  // Each match keeps its own format: digits are replaced one for one, separators stay.
  const rule = (target, number, formatted) => {
    const [cc, nsn] = split(target), [ncc, nnsn] = split(number);
    const seq = (s) => s.split('').join(SEP);
    const re = new RegExp('(^|\\D)(\\(?(?:(?:\\+|00)?' + SEP + seq(cc) + SEP + ')?' +
      (cc === '1' ? '' : '(?:0' + SEP + ')?') + ')(' + seq(nsn) + ')(?!\\d)', 'g');
    const same = cc === ncc && nsn.length === nnsn.length;
    return (s, tel) => s.replace(re, (m, lead, head, body) => {
      let i = 0;
      if (same) return lead + head + body.replace(/\d/g, () => nnsn[i++]);
      // No digit-for-digit map: international style (or a tel: link) gets E.164, else national.
      return lead + (tel || /\d/.test(head.replace(/0\D*$/, '')) ? number : formatted);
    });
  };
  const swapText = (s, tel) => rules.reduce((t, r) => r(t, tel), s);

  const fix = (n) => {
    if (n.nodeType === 3) {
      const t = swapText(n.data);
      if (t !== n.data) { n.data = t; return 1; }
    } else if (n.nodeName === 'A' && /^tel:/i.test(n.getAttribute('href'))) {
      const h = n.getAttribute('href').slice(4);
      let v = h;
      try { v = decodeURIComponent(h); } catch (e) { /* keep it raw */ }
      const t = swapText(v, true);
      if (t !== v) { n.setAttribute('href', 'tel:' + t); return 1; }
    }
    return 0;
  };
  // Swap every text node and tel: link under `node`; returns how many changed.
  const walk = (node) => {
    const el = node && (node.nodeType === 3 ? node.parentElement : node);
    if (!rules.length || !el || (el.closest && el.closest(NO))) return 0;
    // 5 = elements and text; an excluded element is rejected with its whole subtree (2).
    const tw = d.createTreeWalker(node, 5,
      { acceptNode: (n) => n.nodeType === 1 && n.matches(NO) ? 2 : 1 });
    let count = 0;
    for (let n = tw.currentNode; n; n = tw.nextNode()) count += fix(n);
    return count;
  };
  const observer = new MutationObserver((records) => records.forEach((r) =>
    r.type === 'childList' ? r.addedNodes.forEach(walk) : walk(r.target)));

  const send = (kind) => {
    if (!session) return;
    const url = api('v1/sessions/' + encodeURIComponent(session) + '/events');
    const body = JSON.stringify({ kind });
    // text/plain keeps it a CORS "simple" request; a beacon survives the page navigating away.
    try {
      if (navigator.sendBeacon(url, new Blob([body], { type: 'text/plain' }))) return;
    } catch (e) { /* no beacons here: fall back to fetch */ }
    fetch(url, { method: 'POST', body, mode: 'no-cors', keepalive: true }).catch(() => 0);
  };
  const beat = () => {
    clearInterval(timer);
    if (session && d.visibilityState === 'visible') {
      timer = setInterval(send, PING_S * 1000, 'ping');
    }
  };
  const moved = () => { if (location.href !== seen) { seen = location.href; send('pageview'); } };

  const listen = () => {
    ['pushState', 'replaceState'].forEach((k) => {
      const orig = history[k];
      history[k] = function () { const r = orig.apply(this, arguments); moved(); return r; };
    });
    w.addEventListener('popstate', moved);
    d.addEventListener('visibilitychange', () => {
      send(d.visibilityState === 'hidden' ? 'hidden' : 'ping');
      beat();
    });
    d.addEventListener('click', (e) => {
      if (e.target.closest && e.target.closest('a[href^="tel:" i]')) send('click_to_call');
    }, true);
  };

  const use = (a) => {
    if (!consented) return settle(null); // consent withdrawn while the answer was on its way
    if (a.visitor) setId(a.visitor);
    session = a.session;
    seen = location.href;
    rules = (a.replaces || []).filter((t) => t !== a.number)
      .map((t) => rule(t, a.number, a.formatted));
    walk(root);
    // Nodes the parser or the app adds later; async scripts may run before the body is parsed.
    observer.observe(root, { childList: true, subtree: true, characterData: true,
      attributes: true, attributeFilter: ['href'] });
    listen();
    beat();
    settle(a);
  };

  const start = async () => {
    if (started || !consented || !site) return release();
    started = true;
    const ctl = new AbortController(), t = setTimeout(() => ctl.abort(), BUDGET_MS);
    try {
      // A string body goes as text/plain: a CORS "simple" request, no preflight round trip.
      const body = JSON.stringify({ site, visitor: getId(), url: location.href,
        referrer: d.referrer || null });
      const r = await fetch(api('v1/swap'), { method: 'POST', body, signal: ctl.signal });
      if (!r.ok) throw r.status;
      const a = await r.json();
      clearTimeout(t);
      use(a);
    } catch (e) {
      settle(null); // slow, down or refusing: the page keeps its own numbers
    }
    release();
  };

  const dni = w.dni = {
    ready,
    swap: (node) => walk(node || root),
    consent: (yes) => {
      consented = !!yes;
      if (yes) return start();
      setId('');
      session = null;
      return beat();
    },
    push: (call) => typeof dni[call[0]] === 'function' && dni[call[0]].apply(dni, call.slice(1)),
  };
  start();
  if (Array.isArray(queued)) queued.forEach(dni.push);
})();
