// The cluster page's graph (console/templates/_cluster_graph.html): members coloured by tier and outlined by their
// standing decision, links drawn with cytoscape.js (vendor/), data from the page's JSON block
// (console/link_graph.py: cluster_graph). Clicking a link fills the side panel with what joined the two accounts;
// clicking an account opens its page. The panel is built with textContent only: no HTML from data.
(function () {
  "use strict";

  const source = document.getElementById("cluster-graph-data");
  const container = document.getElementById("cluster-graph");
  const panel = document.getElementById("edge-panel");
  if (!source || !container || !panel || typeof cytoscape !== "function") return;
  const graph = JSON.parse(source.textContent);

  // cytoscape injects an inline <style> (the container's `position: relative`) unless an element with this id
  // exists; the Content-Security-Policy refuses inline styles, and console.css already holds that rule.
  const injectedStyleId = "__________cytoscape_stylesheet";
  if (!document.getElementById(injectedStyleId)) {
    const marker = document.createElement("meta");
    marker.id = injectedStyleId;
    document.head.appendChild(marker);
  }

  // the tier colours are console.css's, so the graph, badges and charts agree
  const css = getComputedStyle(document.documentElement);
  const colour = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
  const decisionRing = { extraction: "#7a0f0a", benign: "#1e7a3c", none: "#c4c8ce" };

  const kindLabel = (kind) => kind.replace(/_/g, " ");
  const maxStrength = Math.max(1, ...graph.edges.map((e) => e.strength || 0));

  const elements = [
    ...graph.nodes.map((n) => ({ group: "nodes", data: n })),
    ...graph.edges.map((e) => ({
      group: "edges",
      data: { ...e, width: 1 + 5 * ((e.strength || 0) / maxStrength), label: e.kinds.map(kindLabel).join(", ") },
    })),
  ];

  const cy = cytoscape({
    container,
    elements,
    wheelSensitivity: 0.3,
    minZoom: 0.1,
    maxZoom: 4,
    style: [
      {
        selector: "node",
        style: {
          "background-color": colour("--c-low", "#5f8f5f"),
          "border-width": 3,
          "border-color": decisionRing.none,
          width: 18,
          height: 18,
          label: "data(id)",
          "font-size": 8,
          "min-zoomed-font-size": 7, // labels appear as one zooms in, so hundreds of members stay legible
          color: "#1d1f21",
          "text-valign": "bottom",
          "text-margin-y": 3,
        },
      },
      ...["critical", "high", "elevated", "low"].map((tier) => ({
        selector: `node[tier = "${tier}"]`,
        style: { "background-color": colour(`--c-${tier}`, "#888") },
      })),
      { selector: 'node[decision = "extraction"]', style: { "border-color": decisionRing.extraction, "border-width": 5 } },
      { selector: 'node[decision = "benign"]', style: { "border-color": decisionRing.benign, "border-width": 5 } },
      {
        selector: "edge",
        style: { width: "data(width)", "line-color": "#9aa5b1", "curve-style": "straight", opacity: 0.8 },
      },
      { selector: "edge[!in_cluster_graph]", style: { "line-style": "dashed" } },
      { selector: "edge:selected", style: { "line-color": colour("--accent", "#2952a3"), opacity: 1 } },
      { selector: "node:selected", style: { "overlay-opacity": 0.15 } },
    ],
    layout:
      graph.nodes.length <= 150
        ? { name: "cose", animate: false, randomize: false, nodeDimensionsIncludeLabels: true }
        : { name: "concentric", concentric: (node) => node.data("score") || 0, levelWidth: () => 0.1, animate: false },
  });
  container.cy = cy; // for scripting from the browser's console and for tests/test_console_graph.py
  container.dataset.ready = "1"; // the graph is laid out

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
  }

  function showEdge(data) {
    panel.replaceChildren();
    const title = document.createElement("h3");
    title.textContent = `${data.source} — ${data.target}`;
    const summary = document.createElement("p");
    const strength = data.strength == null ? "-" : data.strength.toFixed(3);
    summary.textContent =
      `Linked by ${data.kinds.map(kindLabel).join(", ")}; strength ${strength}` +
      (data.in_cluster_graph ? "." : "; not kept by the clusters (the two are not each among the other's strongest links).");
    const table = document.createElement("table");
    const head = table.createTHead().insertRow();
    for (const name of ["Kind", "Shared artefact", "Accounts sharing it", "First seen", "Last seen"]) {
      const th = document.createElement("th");
      th.textContent = name;
      head.appendChild(th);
    }
    const body = table.createTBody();
    for (const a of data.artefacts) {
      const row = body.insertRow();
      cell(row, kindLabel(a.kind));
      cell(row, a.artefact, "id");
      cell(row, a.accounts == null ? "-" : String(a.accounts), "num");
      cell(row, a.first_seen || "-");
      cell(row, a.last_seen || "-");
    }
    const links = document.createElement("p");
    for (const id of [data.source, data.target]) {
      const link = document.createElement("a");
      link.href = graph.nodes.find((n) => n.id === id).href;
      link.textContent = `open ${id}`;
      link.className = "id";
      links.append(link, " ");
    }
    panel.append(title, summary, table, links);
  }

  cy.on("tap", "edge", (event) => {
    cy.elements().unselect();
    event.target.select();
    showEdge(event.target.data());
  });
  cy.on("tap", "node", (event) => {
    window.location.href = event.target.data("href");
  });
})();
