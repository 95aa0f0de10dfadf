// The Operator form's tool picker: a filter box that hides the tools whose name and description do not match,
// a "select all" per server (ticking or unticking the server's tools the filter shows), and a count of the tools
// chosen. Without this script the picker is a plain list of checkboxes, each beside its label.
(function () {
  "use strict";

  function setUp() {
    const picker = document.getElementById("tool-picker");
    if (!picker) return;
    const filter = document.getElementById("tool-filter");
    const chosen = document.getElementById("tools-chosen");
    const servers = Array.from(picker.querySelectorAll(".tool-server"));

    const boxesOf = (server) => Array.from(server.querySelectorAll("input[name=tools]"));
    const shown = (box) => !box.closest("li").hidden;

    function update(server) {
      const all = server.querySelector("[data-select-all]");
      const visible = boxesOf(server).filter(shown);
      const ticked = visible.filter((box) => box.checked).length;
      all.checked = visible.length > 0 && ticked === visible.length;
      all.indeterminate = ticked > 0 && ticked < visible.length;
      all.disabled = visible.length === 0;
    }

    function count() {
      const ticked = picker.querySelectorAll("input[name=tools]:checked").length;
      chosen.textContent = ticked === 1 ? "1 tool chosen" : ticked + " tools chosen";
    }

    function applyFilter() {
      const words = filter.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
      for (const server of servers) {
        const name = server.dataset.server.toLowerCase();
        let any = false;
        for (const group of server.querySelectorAll(".tool-intent")) {
          let inGroup = false;
          for (const item of group.querySelectorAll("li")) {
            const text = name + " " + item.dataset.search;
            item.hidden = !words.every((word) => text.includes(word));
            inGroup = inGroup || !item.hidden;
          }
          group.hidden = !inGroup;
          any = any || inGroup;
        }
        server.querySelector(".no-match").hidden = any;
        update(server);
      }
    }

    for (const server of servers) {
      server.querySelector("[data-select-all]").addEventListener("change", function (event) {
        for (const box of boxesOf(server).filter(shown)) box.checked = event.target.checked;
        update(server);
        count();
      });
      for (const box of boxesOf(server)) {
        box.addEventListener("change", function () {
          update(server);
          count();
        });
      }
      update(server);
    }
    filter.addEventListener("input", applyFilter);
    // Enter in the filter box filters; it does not submit the form.
    filter.addEventListener("keydown", function (event) {
      if (event.key === "Enter") event.preventDefault();
    });
    count();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
})();
