export function SequenceDetail({ id }: { id: number }) {
  return (
    <section>
      <h1>Sequence {id}</h1>
    </section>
  );
}
