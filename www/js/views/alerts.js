// Desktop notifications: for a mention or a direct message while the page is hidden,
// once the user has allowed them (the browser asks only after they press the button;
// a page may not ask by itself).

const $ = (id) => document.getElementById(id);
const supported = () => 'Notification' in window;

function renderButton() {
  $('alerts-enable').hidden = !supported() || Notification.permission !== 'default';
}

/** Show a desktop notification if the page is hidden and the user allowed them;
 * clicking it opens `hash` (`#c/general`, `#u/alice`). */
export function desktopAlert(title, body, hash) {
  if (!document.hidden || !supported() || Notification.permission !== 'granted') return;
  const note = new Notification(title, { body, tag: hash });
  note.addEventListener('click', () => {
    window.focus();
    location.hash = hash;
    note.close();
  });
}

export function setupAlerts() {
  renderButton();
  $('alerts-enable').addEventListener('click', async () => {
    if (supported()) await Notification.requestPermission();
    renderButton();
  });
}
