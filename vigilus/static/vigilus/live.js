// Re-sync after a reconnect. The server pushes live updates only to sockets that are open at that moment, so
// whatever happened while a socket was down (a request raised, a run finished) never reaches the page. When a
// socket opens again, this fires a `resync` event on <body>; the live regions listen for it
// (hx-trigger="resync from:body") and fetch themselves anew. The first open of each socket needs none: the
// page was rendered just before it.
(function () {
  "use strict";

  // The sockets that have opened once. htmx's ws extension keeps one wrapper per socket across its reconnects.
  const opened = new WeakSet();

  document.addEventListener("htmx:wsOpen", function (event) {
    const socket = event.detail.socketWrapper;
    if (!opened.has(socket)) {
      opened.add(socket);
      return;
    }
    htmx.trigger(document.body, "resync");
  });
})();

// Pushes that this page has no place for. A push goes to everyone in a group (all approvers get the pending
// list), whatever page each has open: the run page or the overview has no #pending-requests, and htmx would log
// an oobErrorNoTarget console error for it. The dashboard's socket (base.html: hx-ext="ws,live-targets") drops
// the parts of a message whose target is not on the page; the rest is swapped in as before. The page fetches
// what it shows when it is loaded (and after a reconnect), so nothing it shows is missed.
(function () {
  "use strict";

  function targetOf(element) {
    const how = element.getAttribute("hx-swap-oob") || "true";
    const colon = how.indexOf(":");
    if (colon >= 0) return how.slice(colon + 1);
    return element.id ? "#" + CSS.escape(element.id) : null;
  }

  htmx.defineExtension("live-targets", {
    transformResponse: function (text) {
      const template = document.createElement("template");
      template.innerHTML = text;
      let dropped = false;
      for (const element of Array.from(template.content.children)) {
        const selector = targetOf(element);
        if (selector && !document.querySelector(selector)) {
          element.remove();
          dropped = true;
        }
      }
      return dropped ? template.innerHTML : text;
    },
  });
})();
