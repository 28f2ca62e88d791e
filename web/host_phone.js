// The host console on a phone: the camera preview fills the screen, Go live and End sit over
// it, and the panels (setup, products, sales, orders, chat) open one at a time as a sheet from
// the tab bar at the bottom. Which sheet is open is `body[data-sheet]`; host_phone.css lays it
// out below 800 px wide and ignores it on wider screens, where every panel is a column.
//
// A tab opens its sheet, and a second tap on it (or Escape) closes it. When the show ends the
// summary's sheet opens by itself.
const tabs = [...document.querySelectorAll('.sheet-tabs [data-open]')];

function openSheet(name) {
  if (name) document.body.dataset.sheet = name;
  else delete document.body.dataset.sheet;
  for (const t of tabs) t.setAttribute('aria-expanded', String(t.dataset.open === name));
}

for (const tab of tabs) {
  tab.addEventListener('click', () => openSheet(document.body.dataset.sheet === tab.dataset.open ? null : tab.dataset.open));
}
document.addEventListener('keydown', ev => {
  if (ev.key === 'Escape' && document.body.dataset.sheet && !document.querySelector('dialog[open]')) openSheet(null);
});

const summary = document.getElementById('summary');
new MutationObserver(() => { if (!summary.hidden && matchMedia('(max-width: 800px)').matches) openSheet('sales'); })
  .observe(summary, { attributes: true, attributeFilter: ['hidden'] });

window.sellcastSheets = { open: openSheet };
