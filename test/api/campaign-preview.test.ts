/** Previews render a body the way materialisation will: same expression, same spintax choices. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { expansions, parseTemplate } from '../../src/engine/content/template.js';
import { materialiseAll } from '../../src/engine/materialise.js';
import { startCampaignNow } from '../../src/store/sql/campaigns.js';
import { insertDevices } from '../../src/store/sql/devices.js';
import { backends } from '../helpers/db.js';
import { expectError, ok, openApi, tenant, type Caller, type TestApi } from '../helpers/api.js';

for (const backend of backends) {
  describe(`campaign previews (${backend})`, () => {
    let api: TestApi;
    let owner: Caller;
    let leads: { id: number; name: string; phone: string; attributes: Record<string, unknown> }[];
    const body = '{Hi|Hello|Hey} {first_name:there}, {city:your town} awaits';

    before(async () => {
      api = await openApi(backend);
      owner = await tenant(api);
      const [device] = await insertDevices(api.t.db, owner.userId, [{ name: 'd', minDelayMs: 0, maxDelayMs: 0 }], new Date(api.clock.now()));
      const res = await api.t.db.query<{ id: number; name: string; phone: string; attributes: Record<string, unknown> }>(
        `insert into leads (user_id, device_id, name, phone, attributes, created_at, updated_at)
         select $1, $2, case when g = 3 then '' else 'Nur ' || g || ' Aziz' end, '+6012555' || lpad(g::text, 4, '0'),
                case when g % 2 = 0 then '{"city": "Ipoh"}'::jsonb else '{}'::jsonb end, $3, $3
           from generate_series(1, 30) g returning id, name, phone, attributes`,
        [owner.userId, device, new Date(api.clock.now())],
      );
      leads = res.rows.sort((a, b) => a.id - b.id);
    });
    after(async () => api.dispose());

    it('renders an unsaved body for the first five leads or the ones named, and refuses a broken template with its position', async () => {
      const first = ok(await owner.call('POST', '/api/v1/campaigns/preview', { body }));
      assert.deepEqual(first.data.map((r: { lead_id: number }) => r.lead_id), leads.slice(0, 5).map((l) => l.id));
      const t = parseTemplate(body);
      for (const r of first.data) {
        const lead = leads.find((l) => l.id === r.lead_id)!;
        assert.ok(expansions(t, lead)!.includes(r.text), r.text);
      }
      assert.match(first.data[2].text, /^(Hi|Hello|Hey) there, your town awaits$/, 'blank name and no city fall back');
      const named = ok(await owner.call('POST', '/api/v1/campaigns/preview', { body: 'Hi {name}', lead_ids: [leads[7]!.id, leads[9]!.id] }));
      assert.deepEqual(named.data.map((r: { text: string }) => r.text), [`Hi ${leads[7]!.name}`, `Hi ${leads[9]!.name}`]);
      const err = expectError(await owner.call('POST', '/api/v1/campaigns/preview', { body: 'Hi {first name}' }), 400, 'VALIDATION_FAILED');
      assert.equal(err.details[0]!.path, 'body');
      assert.equal(err.details[0]!.index, 3);
    });

    it("shows a saved campaign's messages exactly as materialisation writes them, and nothing of another tenant", async () => {
      const created = ok(await owner.call('POST', '/api/v1/campaigns', { name: 'p', body }), 201);
      const ids = leads.map((l) => l.id).join(',');
      const shown = ok(await owner.call('GET', `/api/v1/campaigns/${created.id}/preview?lead_ids=${leads.slice(0, 20).map((l) => l.id).join(',')}`));
      assert.equal(shown.data.length, 20);
      assert.ok(ids.length > 0);
      await startCampaignNow(api.t.db, created.id, new Date(api.clock.now()));
      await materialiseAll(api.t.db, created.id, api.clock.now());
      const rows = await api.t.db.query<{ lead_id: number; body: string }>(`select lead_id, body from messages where campaign_id = $1`, [created.id]);
      const written = new Map(rows.rows.map((r) => [r.lead_id, r.body]));
      for (const r of shown.data) assert.equal(r.text, written.get(r.lead_id));
      // Several options were chosen across the leads.
      assert.ok(new Set(shown.data.map((r: { text: string }) => r.text.split(' ')[0])).size >= 2);

      const stranger = await tenant(api);
      expectError(await stranger.call('GET', `/api/v1/campaigns/${created.id}/preview`), 404, 'CAMPAIGN_NOT_FOUND');
      const theirs = ok(await stranger.call('POST', '/api/v1/campaigns/preview', { body: 'Hi', lead_ids: [leads[0]!.id] }));
      assert.deepEqual(theirs.data, [], "another tenant's lead is not rendered");
    });
  });
}
