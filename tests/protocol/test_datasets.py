"""dataset/evaluate and optimise-prompt read datasets the same way: the same formats (cifar10,
cifar100, cifar100-coarse, list) and the same errors, all given before any work starts: -32602 for an
unknown format or missing class names, -32007 for a dataset that is unreadable or labelled outside
its class names (protocol/README.md: Errors)."""

from conftest import ROOT, Daemon, run
from test_reliability_errors import refused

SHARED = ROOT.parent / "shared"
CIFAR = SHARED / "data" / "cifar-10"
IMAGES = SHARED / "data" / "images"
RN = ROOT / "Tests" / "VLMCLIPTests" / "Fixtures" / "rn-tiny"
LISTED = [("chelsea.png", "cat"), ("coffee.png", "cup"), ("astronaut.png", "person"), ("coins.png", "cup"),
          ("camera.png", "person"), ("logo.png", "cat")]


def image_list(tmp_path, entries=LISTED, name="list.txt"):
    path = tmp_path / name
    path.write_text("".join(f"{IMAGES / image}\t{label}\n" for image, label in entries))
    return path


def evaluate(dataset: dict) -> dict:
    """dataset/evaluate's params: the dataset's fields sit at the top level, the path under 'dataset'."""
    return {**{k: v for k, v in dataset.items() if k != "path"}, "dataset": dataset["path"]}


def optimise(dataset: dict) -> dict:
    return {"method": "bank", "dataset": dataset, "shots": 1, "validationPerClass": 1}


METHODS = [("dataset/evaluate", evaluate, "params"), ("optimise-prompt", optimise, "params.dataset")]


def test_dataset_evaluate_reads_a_labelled_image_list(tmp_path):
    async def body():
        d = await Daemon().start()
        await d.request("models/load", {"kind": "clip", "path": str(RN)})
        listing = str(image_list(tmp_path))
        result = await d.request("dataset/evaluate", {"dataset": listing, "format": "list", "batchSize": 4,
                                                      "partialResultToken": "p"})
        # Class names from the list in order of first appearance; two images of each.
        assert result.labels == ["cat", "cup", "person"] and result.count == 6
        assert [sum(row) for row in result.confusion] == [2, 2, 2]
        assert [p["processed"] for p in d.progress("p")] == [4, 6]
        # Given class names fix the label order (and the list must keep to them).
        result = await d.request("dataset/evaluate", {"dataset": listing, "format": "list",
                                                      "labels": ["person", "cat", "cup", "dog"], "limit": 5})
        assert result.labels == ["person", "cat", "cup", "dog"] and result.count == 5
        assert [sum(row) for row in result.confusion] == [2, 1, 2, 0]
        assert await d.stop() == 0
    run(body(), timeout=300)


def dataset_cases(tmp_path):
    """(dataset fields, code, words in the message) of each way a dataset is refused."""
    other = image_list(tmp_path, [("chelsea.png", "cat"), ("coffee.png", "bicycle")], "other.txt")
    gone = image_list(tmp_path, LISTED[:3] + [("no-such-image.png", "cup")] + LISTED[3:], "gone.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing here\n")
    batch = str(CIFAR / "test_batch.bin")
    return [
        ({"path": batch, "format": "imagenet", "labels": ["a"]}, -32602,
         ['.format: expected "cifar10", "cifar100", "cifar100-coarse" or "list", got "imagenet"']),
        ({"path": batch}, -32602, ["give exactly one of 'labels' or 'labelsFile'"]),
        ({"path": batch, "labels": ["a", "b"]}, -32007, [batch, "record 2 has label 2 but only 2 class names were given"]),
        ({"path": str(other), "format": "list", "labels": ["cat", "cup"]}, -32007,
         [str(other), "line 2 has label 'bicycle', not one of the class names"]),
        ({"path": str(gone), "format": "list"}, -32007, [str(gone), "line 4", "no-such-image.png"]),
        ({"path": str(empty), "format": "list"}, -32007, [str(empty), "no labelled images"]),
        ({"path": "/no/such/list.txt", "format": "list"}, -32007, ["/no/such/list.txt"]),
    ]


def test_both_methods_refuse_a_bad_dataset_alike_before_any_work(tmp_path):
    async def body():
        d = await Daemon().start()
        await d.request("models/load", {"kind": "clip", "path": str(RN)})
        for dataset, code, words in dataset_cases(tmp_path):
            messages = []
            for method, params, field in METHODS:
                err = await refused(d, method, {**params(dataset), "partialResultToken": "p", "workDoneToken": "w"})
                assert err.code == code and all(w in err.message for w in words), (method, dataset, err.message)
                assert not d.progress("p") and not d.progress("w"), (method, dataset)
                messages.append(err.message.replace(field + ".", "params.").replace(field + ":", "params:"))
            assert messages[0] == messages[1], dataset
        assert await d.stop() == 0
    run(body(), timeout=300)


def test_both_methods_read_cifar_and_list_datasets(tmp_path):
    async def body():
        d = await Daemon().start()
        await d.request("models/load", {"kind": "clip", "path": str(RN)})
        cifar = {"path": str(CIFAR / "test_batch.bin"), "format": "cifar10", "labelsFile": str(CIFAR / "batches.meta.txt")}
        listing = {"path": str(image_list(tmp_path)), "format": "list"}
        assert (await d.request("dataset/evaluate", {**evaluate(cifar), "limit": 20})).count == 20
        assert (await d.request("dataset/evaluate", evaluate(listing))).count == 6
        # One training and one validation image per class: 10 CIFAR-10 classes, 3 listed ones.
        assert (await d.request("optimise-prompt", optimise(cifar))).trainImages == 10
        assert (await d.request("optimise-prompt", optimise(listing))).trainImages == 3
        assert await d.stop() == 0
    run(body(), timeout=300)
