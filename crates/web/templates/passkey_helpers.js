
async function ghPost(url, body) {
  const r = await fetch(url, {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body), credentials: 'same-origin'});
  const answer = await r.json().catch(() => ({error: 'unexpected answer (' + r.status + ')'}));
  if (!r.ok && answer.reauth) location.href = answer.reauth;
  if (!r.ok) throw new Error(answer.error || ('HTTP ' + r.status));
  return answer;
}
