// The dashboard's script: it replaces the live sections in place every 2 s from
// GET /api/v1/dashboard (the server renders them, so the page reads the same without it),
// and sends the playground's requests through POST /api/v1/playground.
(function () {
  'use strict';
  var every = 2000;
  var live = document.getElementById('live');
  var refreshes = 0;

  // answer reads a JSON response, failing with the server's message when it is an error.
  function answer(r) {
    return r.json().catch(function () { return {}; }).then(function (d) {
      if (!r.ok) {
        throw new Error((d && d.message) || (r.status + ' ' + r.statusText));
      }
      return d;
    });
  }

  function refresh() {
    if (document.hidden) {
      setTimeout(refresh, every);
      return;
    }
    fetch('/api/v1/dashboard', {credentials: 'same-origin', cache: 'no-store', headers: {'Accept': 'application/json'}})
      .then(answer)
      .then(function (d) {
        Object.keys(d.html || {}).forEach(function (id) {
          var el = document.getElementById(id);
          if (el) {
            el.innerHTML = d.html[id]; // rendered and escaped by the server's html/template
          }
        });
        document.getElementById('now').textContent = d.now;
        refreshes++;
        document.body.setAttribute('data-refreshes', String(refreshes));
        live.textContent = 'live: updates every 2 s';
        live.className = '';
      })
      .catch(function (e) {
        live.textContent = 'not updating: ' + e.message + ' (trying again)';
        live.className = 'warning';
      })
      .finally(function () { setTimeout(refresh, every); });
  }
  setTimeout(refresh, every);

  var form = document.getElementById('playground-form');
  var result = document.getElementById('playground-result');
  var busy = document.getElementById('playground-busy');

  function show(d) {
    ['status', 'route', 'task', 'service', 'answer', 'error'].forEach(function (f) {
      result.querySelector('[data-field="' + f + '"]').textContent = d[f] == null ? '' : String(d[f]);
    });
    result.querySelector('[data-field="ttft"]').textContent = d.ttftMs == null ? '' : d.ttftMs.toFixed(1);
    result.querySelector('[data-field="total"]').textContent = d.totalMs == null ? '' : d.totalMs.toFixed(1);
    // Without a usage chunk from the gateway there are no token counts to show.
    result.querySelector('[data-field="tokens"]').textContent = d.outputTokens ? String(d.outputTokens) : '–';
    result.querySelector('[data-field="rate"]').textContent = d.tokensPerSec ? d.tokensPerSec.toFixed(1) : '–';
    result.hidden = false;
  }

  // image reads the chosen file as a data: URL ('' without one).
  function image(file) {
    return new Promise(function (resolve, reject) {
      if (!file) {
        resolve('');
        return;
      }
      var fr = new FileReader();
      fr.onload = function () { resolve(fr.result); };
      fr.onerror = function () { reject(new Error('reading ' + file.name + ': ' + fr.error)); };
      fr.readAsDataURL(file);
    });
  }

  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    var button = form.querySelector('button[type=submit]');
    var el = form.elements;
    button.disabled = true;
    busy.textContent = 'waiting for the gateway’s stream to end…';
    image(el.image.files[0])
      .then(function (img) {
        return fetch('/api/v1/playground', {
          method: 'POST', credentials: 'same-origin',
          headers: {'Content-Type': 'application/json', 'X-Citadel-Dashboard': '1'},
          body: JSON.stringify({model: el.model.value.trim() || 'auto', prompt: el.prompt.value, imageDataURL: img, key: el.key.value})
        });
      })
      .then(answer)
      .then(show)
      .catch(function (e) { show({error: e.message}); })
      .finally(function () {
        button.disabled = false;
        busy.textContent = '';
      });
  });
})();
