// apprt shell, step 0 (a classic script, run before any module).
//
// An import map must be in the document before the first module loads, and the map
// depends on the organization (its installed apps). So: find the organization (the
// URL's #/o/<org>, else the last one used, else the first one the user belongs to),
// fetch its import map, insert it with this script's nonce, then load the shell's
// main module. Switching organization reloads the page with the other map.
(function boot() {
  "use strict";
  const nonce = document.currentScript.nonce;
  const empty = { imports: {}, scopes: {}, integrity: {} };

  function orgFromHash() {
    const match = /^#\/o\/([a-z0-9-]+)/.exec(location.hash);
    return match ? match[1] : null;
  }

  async function getJSON(path) {
    const response = await fetch(path, { credentials: "same-origin" });
    if (!response.ok) {
      const error = new Error(`${path}: ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return response.json();
  }

  async function chooseOrg() {
    const wanted = orgFromHash();
    if (wanted) return wanted;
    let remembered = null;
    try {
      remembered = localStorage.getItem("apprt.org");
    } catch {
      // storage may be disabled; not needed
    }
    const orgs = await getJSON("/api/v1/orgs");
    if (remembered && orgs.some((o) => o.slug === remembered)) return remembered;
    return orgs.length ? orgs[0].slug : null;
  }

  async function prepare() {
    const started = performance.now();
    let org = null;
    let map = empty;
    let status = 200;
    try {
      org = await chooseOrg();
      if (org) map = await getJSON(`/api/v1/orgs/${encodeURIComponent(org)}/importmap`);
    } catch (error) {
      status = error.status || 0;
      map = empty;
    }
    return { org, map, status, ms: performance.now() - started };
  }

  prepare().then((state) => {
    window.apprtBoot = Object.freeze({ ...state, nonce });
    const importmap = document.createElement("script");
    importmap.type = "importmap";
    importmap.nonce = nonce;
    importmap.textContent = JSON.stringify(state.map);
    document.head.append(importmap);
    // The page's header policy trusts nonce'd scripts and, through 'strict-dynamic',
    // whatever they load, from any origin (a browser ignores host sources beside
    // 'strict-dynamic'). A second policy, enforced from here on, binds every further
    // script to the platform's origin: the shell's modules and the apps'
    // content-addressed ones are all there. (It comes after the inline import map,
    // which 'self' would refuse: no inline script is allowed past this point.)
    const originOnly = document.createElement("meta");
    originOnly.httpEquiv = "Content-Security-Policy";
    originOnly.content = "script-src 'self'";
    document.head.append(originOnly);
    const main = document.createElement("script");
    main.type = "module";
    main.nonce = nonce;
    main.src = "/shell/static/main.js";
    document.head.append(main);
  });
})();
