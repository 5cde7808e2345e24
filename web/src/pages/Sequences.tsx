export function Sequences() {
  return (
    <section>
      <h1>Sequences</h1>
    </section>
  );
}
