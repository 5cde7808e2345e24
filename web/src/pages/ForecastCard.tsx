/** When a campaign would finish: the engine run on a virtual clock over its devices (it takes seconds, so on request). */
import { useState } from 'react';
import { api, messageOf, type Forecast } from '../api';
import { dateTime, n } from '../format';
import { useSession } from '../session';
import { Notice } from '../ui';

export function ForecastCard({ campaignId }: { campaignId: number }) {
  const { me } = useSession();
  const id = campaignId;
  const [forecast, setForecast] = useState<Forecast | null>(null);
  const [forecasting, setForecasting] = useState(false);
  const [error, setError] = useState<string | null>(null);
  return (
    <div className="card">
      <h2>Forecast</h2>
      <Notice error={error} />
      {forecast ? (
        <>
          <p>
            {forecast.finishes_at ? (
              <>
                Finishes around <strong>{dateTime(forecast.finishes_at, me.time_zone)}</strong>
              </>
            ) : (
              'Not within the forecast horizon (is a device online?)'
            )}{' '}
            · {n(forecast.messages)} messages over {n(forecast.devices)} devices{forecast.exact ? '' : ' (partly extrapolated)'}
          </p>
          <ul>
            {forecast.per_device.map((d) => (
              <li key={d.device_id}>
                {d.name}: {n(d.messages)} messages, done {dateTime(d.finishes_at, me.time_zone)}
              </li>
            ))}
          </ul>
          {forecast.notes.map((note) => (
            <p key={note} className="hint">
              {note}
            </p>
          ))}
        </>
      ) : (
        <p className="muted">The forecast runs the engine on a virtual clock over your devices' pacing, caps and windows.</p>
      )}
      <button
        type="button"
        disabled={forecasting}
        onClick={() => {
          setForecasting(true);
          api<Forecast>(`/campaigns/${id}/forecast`)
            .then(setForecast, (err: unknown) => setError(messageOf(err)))
            .finally(() => setForecasting(false));
        }}
      >
        {forecasting ? 'Forecasting…' : forecast ? 'Forecast again' : 'Forecast the finish'}
      </button>
    </div>
  );
}
