"""torchvision reference run for docs/perf.md (section "Classifier quality"): MobileNetV3-small
from scratch on widgets-a/classify with the recipe of ../shared/fixtures/make_fixtures.py (60 epochs, batch 32, AdamW 2e-3, label
smoothing 0.1, RandomResizedCrop(224, scale 0.6-1) + flip), validating after every epoch.
Usage: python torchvision_mobilenet_reference.py <widgets-a/classify> [epochs] [threads] [seed]"""
import sys, time, json
import torch, torchvision
from torchvision import datasets, transforms as T

root = sys.argv[1]; epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 60
torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 2)
torch.manual_seed(int(sys.argv[4]) if len(sys.argv) > 4 else 0)
labels = ["ok", "ng", "scratch", "dent"]
norm = T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
tf_train = T.Compose([T.RandomResizedCrop(224, scale=(0.6, 1)), T.RandomHorizontalFlip(), T.ToTensor(), norm])
tf_eval = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), norm])
def folder(split, tf):
    ds = datasets.ImageFolder(f"{root}/{split}", transform=tf)
    remap = {ds.class_to_idx[c]: labels.index(c) for c in ds.classes}
    ds.target_transform = lambda t: remap[t]
    return ds
dl = torch.utils.data.DataLoader(folder("train", tf_train), batch_size=32, shuffle=True)
vl = torch.utils.data.DataLoader(folder("val", tf_eval), batch_size=32)
m = torchvision.models.mobilenet_v3_small(num_classes=4)
opt = torch.optim.AdamW(m.parameters(), lr=2e-3)
t0 = time.time()
for ep in range(epochs):
    te = time.time(); m.train(); tl = n = 0
    for x, y in dl:
        opt.zero_grad(); loss = torch.nn.functional.cross_entropy(m(x), y, label_smoothing=0.1)
        loss.backward(); opt.step(); tl += loss.item() * len(y); n += len(y)
    m.eval(); c = k = 0
    with torch.no_grad():
        for x, y in vl:
            c += (m(x).argmax(1) == y).sum().item(); k += len(y)
    print(json.dumps({"epoch": ep, "loss": round(tl / n, 4), "top1": round(c / k, 4), "time_s": round(time.time() - te, 2)}), flush=True)
print(json.dumps({"total_s": round(time.time() - t0, 1)}))
